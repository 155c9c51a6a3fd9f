"""Matrix-product convolution gradients (JAX on CPU): same values, same training."""

import keras
import numpy as np
import pytest

from keras_ldrop.training import cpu_convolution
from tests.conftest import _tiny_keras_hub_resnet

jax_only = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the JAX backend's convolution"
)


@pytest.fixture
def matmul_gradients():
    cpu_convolution.use_matmul_gradients()
    yield
    cpu_convolution.use_xla_gradients()


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="other backends")
def test_other_backends_keep_their_convolution():
    assert cpu_convolution.use_where_faster() is False
    assert not cpu_convolution.uses_matmul_gradients()
    with pytest.raises(RuntimeError, match="for the JAX backend; KERAS_BACKEND is"):
        cpu_convolution.use_matmul_gradients()


@jax_only
def test_jax_on_cpu_uses_them_and_can_restore_xlas():
    from keras.src.backend.jax import nn

    cpu_convolution.use_xla_gradients()  # as Keras has it, whatever ran before
    keras_conv = nn.conv
    try:
        assert cpu_convolution.use_where_faster() is True
        cpu_convolution.use_matmul_gradients()  # idempotent
        assert cpu_convolution.uses_matmul_gradients() and nn.conv is not keras_conv
    finally:
        cpu_convolution.use_xla_gradients()
    assert nn.conv is keras_conv and not cpu_convolution.uses_matmul_gradients()


@jax_only
def test_keras_convolution_layers_go_through_them(matmul_gradients, monkeypatch):
    calls = []
    ours = cpu_convolution._convolution

    def counting(inputs, kernel, strides, pads):
        calls.append((strides, pads))
        return ours(inputs, kernel, strides, pads)

    monkeypatch.setattr(cpu_convolution, "_convolution", counting)
    layer = keras.layers.Conv2D(4, 3, strides=2, padding="same")
    assert layer(np.zeros((1, 8, 8, 3), "float32")).shape == (1, 4, 4, 4)
    assert calls == [((2, 2), ((0, 1), (0, 1)))]


def conv_values_and_gradients(inputs, kernel, strides, padding, data_format="channels_last",
                              dilation_rate=1):
    import jax
    import jax.numpy as jnp

    def loss(x, w):
        y = keras.ops.conv(x, w, strides, padding, data_format, dilation_rate)
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
    matmul_gradients, height, width, cin, cout, size, stride, padding
):
    rng = np.random.default_rng(0)
    size = size if isinstance(size, tuple) else (size, size)
    inputs = rng.normal(size=(2, height, width, cin)).astype("float32")
    kernel = rng.normal(size=(*size, cin, cout)).astype("float32")
    ours = conv_values_and_gradients(inputs, kernel, stride, padding)
    cpu_convolution.use_xla_gradients()
    xla = conv_values_and_gradients(inputs, kernel, stride, padding)
    cpu_convolution.use_matmul_gradients()
    np.testing.assert_array_equal(ours[0], xla[0])  # the forward pass is XLA's
    for mine, reference in zip(ours[1:], xla[1:]):
        assert mine.shape == reference.shape
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)


@jax_only
def test_grouped_dilated_and_channels_first_convolutions_are_keras_own(matmul_gradients):
    from keras.src.backend.jax import nn

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    grouped = rng.normal(size=(3, 3, 2, 4)).astype("float32")
    kernel = rng.normal(size=(3, 3, 4, 4)).astype("float32")
    keras_conv = cpu_convolution._KERAS_CONV["conv"]
    for args in (
        (inputs, grouped, 1, "same", "channels_last", 1),
        (inputs, kernel, 1, "same", "channels_last", 2),
        (inputs.transpose(0, 3, 1, 2), kernel, 1, "same", "channels_first", 1),
    ):
        np.testing.assert_array_equal(
            np.asarray(nn.conv(*args)), np.asarray(keras_conv(*args))
        )


def fine_tune_three_steps():
    from keras_ldrop import build_classifier
    from keras_ldrop.optimizers import SGD

    keras.utils.set_random_seed(3)
    model = build_classifier(_tiny_keras_hub_resnet(), 3, rate=0.5, seed=1)
    model.compile(
        optimizer=SGD(0.05, momentum=0.9, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 3, 6)
    losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
    return losses, [np.asarray(w) for w in model.trainable_weights]


@jax_only
def test_fine_tuning_a_resnet_gives_the_same_weights():
    xla_losses, xla_weights = fine_tune_three_steps()
    cpu_convolution.use_matmul_gradients()
    try:
        losses, weights = fine_tune_three_steps()
    finally:
        cpu_convolution.use_xla_gradients()
    np.testing.assert_allclose(losses, xla_losses, rtol=1e-5)
    for mine, reference in zip(weights, xla_weights):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)
