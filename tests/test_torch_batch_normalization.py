"""Keras' torch batch normalization with fixed statistics as one kernel: Keras' values, to rounding."""

import keras
import numpy as np
import pytest

from keras_ldrop.training import cpu_convolution, torch_batch_normalization
from tests.conftest import _tiny_keras_hub_resnet
from tests.test_cpu_convolution import _tiny_depthwise_backbone, fine_tune_with_keras_own_then_ours

torch_only = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="the torch backend's batch normalization"
)


def count_keras_own_calls(swap, name, monkeypatch):
    """A list that gets the keyword arguments of every call ours hands on to Keras' own `name`."""
    calls = []
    keras_own = swap.keras_own[name]
    monkeypatch.setitem(
        swap.keras_own, name, lambda *args, **kwargs: calls.append(kwargs) or keras_own(*args, **kwargs)
    )
    return calls


@pytest.fixture
def fused():
    torch_batch_normalization.use_fused_batch_normalization()
    yield
    torch_batch_normalization.use_keras_batch_normalization()


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="other backends")
def test_other_backends_refuse_it():
    with pytest.raises(RuntimeError, match="for the torch backend; KERAS_BACKEND is"):
        torch_batch_normalization.use_fused_batch_normalization()
    assert not torch_batch_normalization.uses_fused_batch_normalization()


@torch_only
def test_fine_tuning_uses_it_and_keras_own_can_come_back():
    from keras.src.backend.torch import nn

    torch_batch_normalization.use_keras_batch_normalization()
    keras_batch_normalization = nn.batch_normalization
    try:
        assert cpu_convolution.use_where_faster() is True
        torch_batch_normalization.use_fused_batch_normalization()  # idempotent
        assert torch_batch_normalization.uses_fused_batch_normalization()
        assert nn.batch_normalization is not keras_batch_normalization
    finally:
        torch_batch_normalization.use_keras_batch_normalization()
    assert nn.batch_normalization is keras_batch_normalization
    assert not torch_batch_normalization.uses_fused_batch_normalization()


def values_and_gradients(shape, affine):
    """Frozen-statistics batch normalization of random inputs: outputs and the gradients of inputs, scale, offset."""
    import torch

    rng = np.random.default_rng(0)
    channels = shape[-1]
    x = torch.tensor(rng.normal(size=shape).astype("float32"), requires_grad=True)
    mean = torch.tensor(rng.normal(size=channels).astype("float32"))
    variance = torch.tensor(rng.uniform(0.1, 2.0, channels).astype("float32"))
    scale = torch.tensor(rng.normal(size=channels).astype("float32"), requires_grad=True)
    offset = torch.tensor(rng.normal(size=channels).astype("float32"), requires_grad=True)
    outputs = keras.ops.batch_normalization(
        x, mean, variance, -1, offset if affine else None, scale if affine else None, 1e-3
    )
    torch.sin(outputs).sum().backward()
    tensors = (outputs, x.grad) + ((scale.grad, offset.grad) if affine else ())
    return [t.detach().numpy() for t in tensors]


@torch_only
@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (7, 6)])
@pytest.mark.parametrize("affine", [True, False])
def test_same_values_and_gradients_as_keras(fused, shape, affine):
    ours = values_and_gradients(shape, affine)
    torch_batch_normalization.use_keras_batch_normalization()
    keras_own = values_and_gradients(shape, affine)
    torch_batch_normalization.use_fused_batch_normalization()
    for mine, reference in zip(ours, keras_own):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)


@torch_only
def test_statistics_with_gradients_and_other_axes_are_keras_own(fused, monkeypatch):
    import torch
    from keras.src.backend.torch import nn

    calls = count_keras_own_calls(torch_batch_normalization._SWAP, "batch_normalization", monkeypatch)
    x = torch.randn(2, 4, 4, 3)
    batch_mean = x.mean((0, 1, 2)).requires_grad_()
    nn.batch_normalization(x, batch_mean, torch.ones(3), -1)  # a BatchNorm in training mode
    nn.batch_normalization(x.permute(0, 3, 1, 2), torch.zeros(3), torch.ones(3), 1)  # channels first
    nn.batch_normalization(torch.randn(2, 5, 3), torch.zeros(3), torch.ones(3), -1)  # 3D
    assert len(calls) == 3
    nn.batch_normalization(x, torch.zeros(3), torch.ones(3), -1)
    assert len(calls) == 3


@torch_only
@pytest.mark.parametrize("backbone", [_tiny_keras_hub_resnet, _tiny_depthwise_backbone])
def test_fine_tuning_gives_keras_own_weights_to_rounding(backbone):
    (keras_losses, keras_weights), (losses, weights) = fine_tune_with_keras_own_then_ours(
        backbone,
        torch_batch_normalization.use_keras_batch_normalization,
        torch_batch_normalization.use_fused_batch_normalization,
    )
    np.testing.assert_allclose(losses, keras_losses, rtol=1e-5)
    for mine, reference in zip(weights, keras_weights):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)


def float32_activations(shape):
    """A torch dispatch mode counting, in `.count`, the float32 tensors of `shape`'s size that operations produce."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Float32Activations(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, operation, types, args=(), kwargs=None):
            result = operation(*args, **(kwargs or {}))
            for tensor in result if isinstance(result, (tuple, list)) else [result]:
                if isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32 and tensor.numel() == np.prod(shape):
                    self.count += 1
            return result

    return Float32Activations()


def frozen_layer_values_and_gradients(dtype_policy, training=False, activations=None):
    """A `BatchNormalization` layer under `dtype_policy` with trained statistics, inference mode:
    outputs and the gradients of inputs, scale and offset, as float32 arrays."""
    import contextlib

    import torch

    rng = np.random.default_rng(1)
    layer = keras.layers.BatchNormalization(dtype=dtype_policy)
    layer.build((None, 5, 4, 6))
    layer.set_weights([rng.normal(size=6), rng.normal(size=6), rng.normal(size=6), rng.uniform(0.1, 2, 6)])
    x = keras.ops.cast(rng.normal(size=(3, 5, 4, 6)), layer.compute_dtype).requires_grad_()
    with activations or contextlib.nullcontext():
        outputs = layer(x, training=training)
        torch.sin(outputs).sum().backward()
    gradients = [x.grad] + [variable.value.grad for variable in layer.trainable_variables]
    return outputs.dtype, [t.detach().float().numpy() for t in [outputs, *gradients]]


@torch_only
@pytest.mark.parametrize("dtype_policy", ["mixed_bfloat16", "mixed_float16"])
def test_lower_precision_layer_stays_in_its_dtype_with_keras_values(fused, dtype_policy):
    from keras.src.layers.normalization.batch_normalization import BatchNormalization

    assert BatchNormalization.call is torch_batch_normalization._batch_normalization_call
    our_float32, keras_float32 = float32_activations((3, 5, 4, 6)), float32_activations((3, 5, 4, 6))
    dtype, ours = frozen_layer_values_and_gradients(dtype_policy, activations=our_float32)
    torch_batch_normalization.use_keras_batch_normalization()
    keras_dtype, keras_own = frozen_layer_values_and_gradients(dtype_policy, activations=keras_float32)
    torch_batch_normalization.use_fused_batch_normalization()
    assert dtype == keras_dtype != keras.ops.convert_to_tensor(0.0).dtype
    assert our_float32.count == 0 < keras_float32.count  # Keras' own casts to float32 and back
    for mine, reference in zip(ours, keras_own):  # one rounding to 8 (bfloat16) or 11 (float16) bits each way
        np.testing.assert_allclose(mine, reference, rtol=2**-7, atol=2**-7 * np.abs(reference).max())


@torch_only
def test_layer_in_training_or_float32_is_keras_own(fused, monkeypatch):
    import torch

    calls = count_keras_own_calls(torch_batch_normalization._LAYER_SWAP, "call", monkeypatch)
    frozen_layer_values_and_gradients("mixed_bfloat16", training=True)  # batch statistics
    frozen_layer_values_and_gradients("float32")  # the fused kernel runs inside Keras' own call
    layer = keras.layers.BatchNormalization(dtype="mixed_bfloat16")
    layer(torch.randn(2, 3, 4, 5).to(torch.bfloat16), mask=torch.ones(2, 3, 4, dtype=torch.bool))
    assert [call["training"] for call in calls] == [True, False, None]
    frozen_layer_values_and_gradients("mixed_bfloat16")
    assert len(calls) == 3


@torch_only
def test_bfloat16_fine_tuning_gives_keras_own_weights_to_bfloat16_rounding():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        (keras_losses, keras_weights), (losses, weights) = fine_tune_with_keras_own_then_ours(
            _tiny_keras_hub_resnet,
            torch_batch_normalization.use_keras_batch_normalization,
            torch_batch_normalization.use_fused_batch_normalization,
        )
    finally:
        keras.config.set_dtype_policy("float32")
    np.testing.assert_allclose(losses, keras_losses, rtol=2**-7)
    for mine, reference in zip(weights, keras_weights):
        np.testing.assert_allclose(mine, reference, rtol=2**-7, atol=1e-4)
