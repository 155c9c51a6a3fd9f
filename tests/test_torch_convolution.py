"""Keras' torch convolution without layout copies: Keras' values, bit for bit."""

import keras
import numpy as np
import pytest

from keras_ldrop.training import cpu_convolution, torch_convolution
from tests.conftest import _tiny_keras_hub_resnet
from tests.test_cpu_convolution import _tiny_depthwise_backbone, assert_fine_tuning_matches

torch_only = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="the torch backend's convolution"
)


@pytest.fixture
def zero_copy():
    torch_convolution.use_zero_copy_convolutions()
    yield
    torch_convolution.use_keras_convolutions()


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="other backends")
def test_other_backends_refuse_them():
    with pytest.raises(RuntimeError, match="for the torch backend; KERAS_BACKEND is"):
        torch_convolution.use_zero_copy_convolutions()
    assert not torch_convolution.uses_zero_copy_convolutions()


@torch_only
def test_fine_tuning_uses_them_and_keras_own_can_come_back():
    from keras.src.backend.torch import nn

    torch_convolution.use_keras_convolutions()
    keras_conv = nn.conv
    try:
        assert cpu_convolution.use_where_faster() is True
        torch_convolution.use_zero_copy_convolutions()  # idempotent
        assert torch_convolution.uses_zero_copy_convolutions() and nn.conv is not keras_conv
    finally:
        torch_convolution.use_keras_convolutions()
    assert nn.conv is keras_conv and not torch_convolution.uses_zero_copy_convolutions()


def values_and_gradients(convolve, inputs, kernel):
    import torch

    inputs = torch.tensor(inputs, requires_grad=True)
    kernel = torch.tensor(kernel, requires_grad=True)
    outputs = convolve(inputs, kernel)
    torch.sin(outputs).sum().backward()
    return [t.detach().numpy() for t in (outputs, inputs.grad, kernel.grad)]


CASES = [
    # convolution, height, width, input channels, kernel shape, stride, padding
    ("conv", 9, 9, 4, (3, 3, 4, 6), 1, "same"),
    ("conv", 10, 10, 4, (3, 3, 4, 6), 2, "same"),  # padding 0 above, 1 below
    ("conv", 11, 11, 3, (7, 7, 3, 5), 2, "valid"),
    ("conv", 10, 9, 4, (1, 1, 4, 6), 2, "same"),
    ("conv", 10, 10, 4, (3, 1, 4, 6), (1, 2), "same"),
    ("conv", 9, 9, 4, (3, 3, 2, 6), 1, "same"),  # two groups
    ("depthwise_conv", 12, 12, 5, (5, 5, 5, 1), 2, "same"),
    ("depthwise_conv", 9, 8, 4, (3, 3, 4, 3), 1, "valid"),
]


@torch_only
@pytest.mark.parametrize("operation,height,width,channels,kernel_shape,stride,padding", CASES)
def test_same_values_and_gradients_as_keras(
    zero_copy, operation, height, width, channels, kernel_shape, stride, padding
):
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(2, height, width, channels)).astype("float32")
    kernel = rng.normal(size=kernel_shape).astype("float32")

    def convolve(x, w):
        return getattr(keras.ops, operation)(x, w, stride, padding)

    ours = values_and_gradients(convolve, inputs, kernel)
    torch_convolution.use_keras_convolutions()
    keras_own = values_and_gradients(convolve, inputs, kernel)
    torch_convolution.use_zero_copy_convolutions()
    for mine, reference in zip(ours, keras_own):
        np.testing.assert_array_equal(mine, reference)


def record_keras_own_calls(monkeypatch, name):
    """The argument tuples of every call that falls back to Keras' own `name` (which still runs)."""
    calls = []
    keras_own = torch_convolution._SWAP.keras_own[name]
    monkeypatch.setitem(
        torch_convolution._SWAP.keras_own, name, lambda *args: calls.append(args) or keras_own(*args)
    )
    return calls


POOL_CASES = [
    # height, width, pool size, strides, padding
    (9, 9, 3, 2, "valid"),
    (9, 9, 3, 2, "same"),  # one row and column of padding each side
    (10, 10, 3, 1, "same"),
    (8, 7, (2, 3), None, "valid"),
]


@torch_only
@pytest.mark.parametrize("height,width,pool_size,strides,padding", POOL_CASES)
def test_max_pooling_gives_keras_values_and_gradients_even_with_ties(
    zero_copy, height, width, pool_size, strides, padding
):
    import torch

    from keras.src.backend.torch import nn

    rng = np.random.default_rng(0)
    values = rng.integers(0, 3, size=(2, height, width, 5)).astype("float32")  # many equal maxima

    def pooled_and_gradient():
        inputs = torch.tensor(values, requires_grad=True)
        outputs = keras.ops.max_pool(inputs, pool_size, strides, padding)
        (outputs * torch.arange(outputs.numel()).reshape(outputs.shape)).sum().backward()
        return outputs.detach().numpy(), inputs.grad.numpy()

    assert nn.max_pool is torch_convolution._max_pool
    ours = pooled_and_gradient()
    torch_convolution.use_keras_convolutions()
    keras_own = pooled_and_gradient()
    torch_convolution.use_zero_copy_convolutions()
    for mine, reference in zip(ours, keras_own):
        np.testing.assert_array_equal(mine, reference)


@torch_only
def test_channels_first_and_asymmetric_same_pooling_are_keras_own(zero_copy, monkeypatch):
    from keras.src.backend.torch import nn

    calls = record_keras_own_calls(monkeypatch, "max_pool")
    inputs = np.random.default_rng(1).normal(size=(2, 8, 8, 4)).astype("float32")
    nn.max_pool(inputs.transpose(0, 3, 1, 2), 3, 2, "valid", "channels_first")
    nn.max_pool(inputs, 3, 2, "same", "channels_last")  # 8 px, stride 2: 0 above, 1 below
    assert [call[3:] for call in calls] == [("valid", "channels_first"), ("same", "channels_last")]
    nn.max_pool(inputs, 3, 2, "valid", "channels_last")
    assert len(calls) == 2


@torch_only
def test_channels_first_and_dilated_same_convolutions_are_keras_own(zero_copy, monkeypatch):
    from keras.src.backend.torch import nn

    calls = record_keras_own_calls(monkeypatch, "conv")
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    kernel = rng.normal(size=(3, 3, 4, 4)).astype("float32")
    nn.conv(inputs.transpose(0, 3, 1, 2), kernel, 1, "same", "channels_first", 1)
    nn.conv(inputs, kernel, 1, "same", "channels_last", 2)
    assert [call[4:] for call in calls] == [("channels_first", 1), ("channels_last", 2)]
    nn.conv(inputs, kernel, 1, "same", "channels_last", 1)
    assert len(calls) == 2


@torch_only
def test_fine_tuning_without_max_pooling_gives_keras_own_weights_bit_for_bit():
    assert_fine_tuning_matches(
        _tiny_depthwise_backbone, torch_convolution.use_keras_convolutions, torch_convolution.use_zero_copy_convolutions
    )


@torch_only
def test_fine_tuning_through_max_pooling_gives_keras_own_weights_to_float_rounding():
    """The layers below the pool get its gradient channels-last instead of in Keras' NCHW copy,
    so oneDNN sums their kernel gradients in another order."""
    assert_fine_tuning_matches(
        _tiny_keras_hub_resnet,
        torch_convolution.use_keras_convolutions,
        torch_convolution.use_zero_copy_convolutions,
        rtol=1e-6,
        atol=1e-9,
    )
