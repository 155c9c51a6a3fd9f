"""The faster JAX convolutions on CPU: same values, same training."""

import keras
import numpy as np
import pytest

from keras_ldrop.training import cpu_convolution
from tests.conftest import _tiny_keras_hub_resnet

jax_only = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the JAX backend's convolution"
)


@pytest.fixture
def cpu_convolutions():
    cpu_convolution.use_cpu_convolutions()
    yield
    cpu_convolution.use_xla_convolutions()


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="other backends")
def test_other_backends_refuse_them():
    with pytest.raises(RuntimeError, match="for the jax backend; KERAS_BACKEND is"):
        cpu_convolution.use_cpu_convolutions()
    assert not cpu_convolution.uses_cpu_convolutions()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's convolution")
def test_tensorflow_keeps_its_convolution():
    assert cpu_convolution.use_where_faster() is False


def test_keras_own_undoes_every_faster_function():
    from keras_ldrop.training import functional_memory, torch_batch_normalization, torch_convolution, torch_sgd

    cpu_convolution.use_where_faster()
    cpu_convolution.use_keras_own()
    assert not cpu_convolution.uses_cpu_convolutions()
    assert not torch_convolution.uses_zero_copy_convolutions()
    assert not torch_batch_normalization.uses_fused_batch_normalization()
    assert not functional_memory.releases_layer_outputs()
    assert not torch_sgd.uses_foreach_sgd_update()


@jax_only
def test_jax_on_cpu_uses_them_and_can_restore_xlas():
    from keras.src.backend.jax import nn

    cpu_convolution.use_xla_convolutions()  # as Keras has it, whatever ran before
    keras_conv, keras_depthwise_conv = nn.conv, nn.depthwise_conv
    try:
        assert cpu_convolution.use_where_faster() is True
        cpu_convolution.use_cpu_convolutions()  # idempotent
        assert cpu_convolution.uses_cpu_convolutions()
        assert nn.conv is not keras_conv and nn.depthwise_conv is not keras_depthwise_conv
    finally:
        cpu_convolution.use_xla_convolutions()
    assert nn.conv is keras_conv and nn.depthwise_conv is keras_depthwise_conv
    assert not cpu_convolution.uses_cpu_convolutions()


@jax_only
def test_keras_convolution_layers_go_through_them(cpu_convolutions, monkeypatch):
    calls = []
    ours = cpu_convolution._convolution

    def counting(inputs, kernel, strides, pads):
        calls.append((strides, pads))
        return ours(inputs, kernel, strides, pads)

    monkeypatch.setattr(cpu_convolution, "_convolution", counting)
    layer = keras.layers.Conv2D(4, 3, strides=2, padding="same")
    assert layer(np.zeros((1, 8, 8, 3), "float32")).shape == (1, 4, 4, 4)
    assert calls == [((2, 2), ((0, 1), (0, 1)))]


def values_and_gradients(operation, inputs, kernel, strides, padding):
    """`operation(inputs, kernel, strides, padding)` and the gradients of a loss on it."""
    import jax
    import jax.numpy as jnp

    def loss(x, w):
        y = operation(x, w, strides, padding)
        return jnp.sum(jnp.sin(y)), y

    (_, outputs), gradients = jax.value_and_grad(loss, (0, 1), has_aux=True)(inputs, kernel)
    return [np.asarray(outputs), *map(np.asarray, gradients)]


CASES = [
    # height, width, in, out, kernel, stride, padding
    (9, 9, 4, 6, 3, 1, "same"),
    (9, 8, 4, 6, 3, 2, "same"),
    (10, 10, 4, 6, 1, 2, "same"),
    (9, 9, 4, 6, 1, 2, "valid"),
    (11, 11, 3, 5, 7, 2, "valid"),
    (8, 7, 4, 6, 1, 1, "valid"),
    (12, 12, 3, 8, 7, 2, "same"),
    (10, 10, 4, 6, (3, 1), (1, 2), "valid"),
]


@jax_only
@pytest.mark.parametrize("height,width,cin,cout,size,stride,padding", CASES)
def test_same_values_and_gradients_as_xla(
    cpu_convolutions, height, width, cin, cout, size, stride, padding
):
    rng = np.random.default_rng(0)
    size = size if isinstance(size, tuple) else (size, size)
    inputs = rng.normal(size=(2, height, width, cin)).astype("float32")
    kernel = rng.normal(size=(*size, cin, cout)).astype("float32")
    ours = values_and_gradients(keras.ops.conv, inputs, kernel, stride, padding)
    cpu_convolution.use_xla_convolutions()
    xla = values_and_gradients(keras.ops.conv, inputs, kernel, stride, padding)
    cpu_convolution.use_cpu_convolutions()
    for mine, reference in zip(ours, xla):
        assert mine.shape == reference.shape
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)


@jax_only
def test_grouped_dilated_and_channels_first_convolutions_are_keras_own(cpu_convolutions):
    from keras.src.backend.jax import nn

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    grouped = rng.normal(size=(3, 3, 2, 4)).astype("float32")
    kernel = rng.normal(size=(3, 3, 4, 4)).astype("float32")
    keras_conv = cpu_convolution._SWAP.keras_own["conv"]
    for args in (
        (inputs, grouped, 1, "same", "channels_last", 1),
        (inputs, kernel, 1, "same", "channels_last", 2),
        (inputs.transpose(0, 3, 1, 2), kernel, 1, "same", "channels_first", 1),
    ):
        np.testing.assert_array_equal(
            np.asarray(nn.conv(*args)), np.asarray(keras_conv(*args))
        )


DEPTHWISE_CASES = [
    # height, width, channels, multiplier, kernel, stride, padding
    (9, 9, 4, 1, 3, 1, "same"),
    (9, 8, 4, 1, 3, 2, "same"),
    (12, 12, 5, 1, 5, 2, "same"),
    (7, 7, 6, 1, 5, 1, "same"),
    (10, 9, 3, 2, 3, 2, "valid"),
    (8, 8, 4, 3, (3, 1), (1, 2), "same"),
]


@jax_only
@pytest.mark.parametrize("height,width,channels,multiplier,size,stride,padding", DEPTHWISE_CASES)
def test_depthwise_same_values_and_gradients_as_xla(
    cpu_convolutions, height, width, channels, multiplier, size, stride, padding
):
    rng = np.random.default_rng(0)
    size = size if isinstance(size, tuple) else (size, size)
    inputs = rng.normal(size=(2, height, width, channels)).astype("float32")
    kernel = rng.normal(size=(*size, channels, multiplier)).astype("float32")
    ours = values_and_gradients(keras.ops.depthwise_conv, inputs, kernel, stride, padding)
    cpu_convolution.use_xla_convolutions()
    xla = values_and_gradients(keras.ops.depthwise_conv, inputs, kernel, stride, padding)
    cpu_convolution.use_cpu_convolutions()
    for mine, reference in zip(ours, xla):
        assert mine.shape == reference.shape
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)


@jax_only
def test_bfloat16_depthwise_is_summed_in_float32(cpu_convolutions):
    rng = np.random.default_rng(4)
    inputs = rng.normal(size=(2, 9, 9, 8)).astype("float32")
    kernel = rng.normal(size=(5, 5, 8, 1)).astype("float32")
    exact = np.asarray(keras.ops.depthwise_conv(inputs, kernel, 1, "same"))
    rounded = keras.ops.depthwise_conv(
        keras.ops.cast(inputs, "bfloat16"), keras.ops.cast(kernel, "bfloat16"), 1, "same"
    )
    assert rounded.dtype == "bfloat16"
    inputs16 = np.asarray(keras.ops.cast(keras.ops.cast(inputs, "bfloat16"), "float32"))
    kernel16 = np.asarray(keras.ops.cast(keras.ops.cast(kernel, "bfloat16"), "float32"))
    summed_in_float32 = np.asarray(keras.ops.depthwise_conv(inputs16, kernel16, 1, "same"))
    np.testing.assert_allclose(
        np.asarray(keras.ops.cast(rounded, "float32")), summed_in_float32, rtol=2**-8, atol=1e-6
    )
    assert np.abs(summed_in_float32 - exact).max() < 0.1


@jax_only
def test_bfloat16_depthwise_gradients_are_float32_ones_to_bfloat16_rounding(cpu_convolutions):
    import jax

    rng = np.random.default_rng(5)
    inputs = rng.normal(size=(2, 9, 9, 8)).astype("float32")
    kernel = rng.normal(size=(3, 3, 8, 1)).astype("float32")
    output_weights = rng.normal(size=(2, 5, 5, 8)).astype("float32")

    def gradients(dtype):
        def loss(x, w):
            outputs = keras.ops.depthwise_conv(x, w, 2, "same")
            return (keras.ops.cast(outputs, "float32") * output_weights).sum()

        x, w = (keras.ops.cast(keras.ops.cast(value, "bfloat16"), dtype) for value in (inputs, kernel))
        return [np.asarray(keras.ops.cast(g, "float32")) for g in jax.grad(loss, (0, 1))(x, w)]

    for rounded, in_float32 in zip(gradients("bfloat16"), gradients("float32")):
        assert rounded.shape == in_float32.shape
        assert np.abs(rounded - in_float32).max() < 2**-7 * np.abs(in_float32).max()


@jax_only
def test_depthwise_and_separable_layers_go_through_them(cpu_convolutions, monkeypatch):
    from keras_ldrop.training import shifted_depthwise

    calls = []
    ours = shifted_depthwise.depthwise_conv

    def counting(inputs, kernel, strides, pads):
        calls.append((kernel.shape, strides, pads))
        return ours(inputs, kernel, strides, pads)

    monkeypatch.setattr(shifted_depthwise, "depthwise_conv", counting)
    image = np.zeros((1, 8, 8, 3), "float32")
    assert keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(image).shape == (1, 4, 4, 3)
    assert keras.layers.SeparableConv2D(5, 3, depth_multiplier=2)(image).shape == (1, 6, 6, 5)
    assert calls == [
        ((3, 3, 3, 1), (2, 2), ((0, 1), (0, 1))),
        ((3, 3, 3, 2), (1, 1), ((0, 0), (0, 0))),
    ]


@jax_only
def test_dilated_and_channels_first_depthwise_convolutions_are_keras_own(cpu_convolutions):
    from keras.src.backend.jax import nn

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    kernel = rng.normal(size=(3, 3, 4, 1)).astype("float32")
    keras_depthwise_conv = cpu_convolution._SWAP.keras_own["depthwise_conv"]
    for args in (
        (inputs, kernel, 1, "same", "channels_last", 2),
        (inputs.transpose(0, 3, 1, 2), kernel, 1, "same", "channels_first", 1),
    ):
        np.testing.assert_array_equal(
            np.asarray(nn.depthwise_conv(*args)), np.asarray(keras_depthwise_conv(*args))
        )


def _tiny_depthwise_backbone():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(5, strides=2, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.SeparableConv2D(12, 3, padding="same")(x)
    return keras.Model(inputs, keras.layers.ReLU()(x), name="tiny_depthwise")


def fine_tune_three_steps(backbone):
    from keras_ldrop import build_classifier
    from keras_ldrop.optimizers import SGD

    keras.utils.set_random_seed(3)
    model = build_classifier(backbone(), 3, rate=0.5, seed=1)
    model.compile(
        optimizer=SGD(0.001, momentum=0.9, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 3, 6)
    losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
    return losses, [np.asarray(w) for w in model.trainable_weights]


def fine_tune_with_keras_own_then_ours(backbone, use_keras_own, use_ours):
    """`fine_tune_three_steps` with Keras' own functions, then with ours; Keras' own are back after."""
    use_keras_own()  # an earlier training may have left ours on
    keras_own = fine_tune_three_steps(backbone)
    use_ours()
    try:
        return keras_own, fine_tune_three_steps(backbone)
    finally:
        use_keras_own()


def assert_fine_tuning_matches(backbone, use_keras_own, use_ours, rtol=0.0, atol=0.0):
    """`fine_tune_with_keras_own_then_ours`: the same losses and weights (bit for bit by default)."""
    (keras_losses, keras_weights), (losses, weights) = fine_tune_with_keras_own_then_ours(
        backbone, use_keras_own, use_ours
    )
    np.testing.assert_allclose(losses, keras_losses, rtol=rtol, atol=atol)
    for mine, reference in zip(weights, keras_weights):
        np.testing.assert_allclose(mine, reference, rtol=rtol, atol=atol)


@jax_only
@pytest.mark.parametrize("backbone", [_tiny_keras_hub_resnet, _tiny_depthwise_backbone])
def test_fine_tuning_gives_the_same_weights(backbone):
    (xla_losses, xla_weights), (losses, weights) = fine_tune_with_keras_own_then_ours(
        backbone, cpu_convolution.use_xla_convolutions, cpu_convolution.use_cpu_convolutions
    )
    np.testing.assert_allclose(losses, xla_losses, rtol=1e-5)
    for mine, reference in zip(weights, xla_weights):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)
