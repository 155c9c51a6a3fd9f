"""Kernels stored channels-last on the torch backend: no copies, Keras' weights bit for bit."""

import doctest

import keras
import numpy as np
import pytest

from keras_ldrop.training import cpu_convolution, torch_kernel_layout
from tests.conftest import _tiny_keras_hub_resnet
from tests.test_cpu_convolution import _tiny_depthwise_backbone, assert_fine_tuning_matches

torch_only = pytest.mark.skipif(keras.backend.backend() != "torch", reason="the torch backend's variables")

CHANNELS_LAST_STRIDES = (12, 4, 1, 36)  # (3, 3, 4, 8) laid out as (8, 3, 3, 4)


@pytest.fixture
def channels_last():
    torch_kernel_layout.use_channels_last_kernels()
    yield
    torch_kernel_layout.use_keras_kernel_layout()


def test_the_module_example_runs():
    assert doctest.testmod(torch_kernel_layout).failed == 0


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="other backends")
def test_other_backends_refuse_it():
    with pytest.raises(RuntimeError, match="for the torch backend; KERAS_BACKEND is"):
        torch_kernel_layout.use_channels_last_kernels()
    assert not torch_kernel_layout.uses_channels_last_kernels()


@torch_only
def test_fine_tuning_uses_it_and_keras_layout_can_come_back():
    torch_kernel_layout.use_keras_kernel_layout()
    try:
        assert cpu_convolution.use_where_faster() is True
        torch_kernel_layout.use_channels_last_kernels()  # idempotent
        assert torch_kernel_layout.uses_channels_last_kernels()
        assert keras.Variable(np.zeros((3, 3, 4, 8), "float32")).value.stride() == CHANNELS_LAST_STRIDES
    finally:
        torch_kernel_layout.use_keras_kernel_layout()
    assert not torch_kernel_layout.uses_channels_last_kernels()
    assert keras.Variable(np.zeros((3, 3, 4, 8), "float32")).value.is_contiguous()


@torch_only
def test_only_four_dimensional_float_variables_made_afterwards_change_layout(channels_last):
    import torch

    values = np.arange(3 * 3 * 4 * 8, dtype="float32").reshape(3, 3, 4, 8)
    torch_kernel_layout.use_keras_kernel_layout()
    earlier = keras.Variable(values)
    torch_kernel_layout.use_channels_last_kernels()
    assert earlier.value.is_contiguous()
    kernel = keras.Variable(values)
    assert tuple(kernel.shape) == values.shape and kernel.value.stride() == CHANNELS_LAST_STRIDES
    np.testing.assert_array_equal(kernel.numpy(), values)
    assert isinstance(kernel.value, torch.nn.Parameter) and kernel.value.requires_grad
    frozen = keras.Variable(values, trainable=False)
    assert frozen.value.stride() == CHANNELS_LAST_STRIDES and not frozen.value.requires_grad
    assert keras.Variable(np.zeros((4, 8), "float32")).value.is_contiguous()
    assert keras.Variable(np.zeros((3, 3, 4, 8), "int32"), dtype="int32", trainable=False).value.is_contiguous()
    wrapped = torch.nn.Parameter(torch.zeros(3, 3, 4, 8))
    assert keras.Variable(wrapped).value is wrapped


@torch_only
@pytest.mark.parametrize("backbone", [_tiny_keras_hub_resnet, _tiny_depthwise_backbone])
def test_fine_tuning_gives_keras_own_weights_bit_for_bit(backbone):
    assert_fine_tuning_matches(
        backbone, torch_kernel_layout.use_keras_kernel_layout, torch_kernel_layout.use_channels_last_kernels
    )


@torch_only
def test_convolutions_read_the_kernels_in_place_and_their_gradients_and_momentums_match(
    channels_last, monkeypatch
):
    import torch

    from keras_ldrop import build_classifier
    from keras_ldrop.optimizers import SGD
    from keras_ldrop.training import torch_convolution

    read = []
    conv2d = torch.nn.functional.conv2d

    def recording_conv2d(inputs, weight, *args, **kwargs):
        if not weight.is_meta:  # Keras' shape inference runs on meta tensors
            read.append(weight.data_ptr())
        return conv2d(inputs, weight, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv2d", recording_conv2d)
    model = build_classifier(_tiny_keras_hub_resnet(), 3, rate=0.5)
    model.compile(optimizer=SGD(0.001, momentum=0.9), loss="sparse_categorical_crossentropy")
    torch_convolution.use_zero_copy_convolutions()
    try:
        model.train_on_batch(np.zeros((2, 32, 32, 3), "float32"), np.zeros(2, "int32"))
    finally:
        torch_convolution.use_keras_convolutions()
    kernels = [v for v in model.trainable_variables if len(v.shape) == 4]
    assert len(kernels) >= 5 and set(read) == {kernel.value.data_ptr() for kernel in kernels}
    momentums = {tuple(m.shape): m for m in model.optimizer.momentums}
    for kernel in kernels:
        assert not kernel.value.is_contiguous()
        assert kernel.value.grad.stride() == kernel.value.stride()
        assert momentums[tuple(kernel.shape)].value.stride() == kernel.value.stride()


@torch_only
def test_a_saved_model_loads_with_its_weights(channels_last, tmp_path):
    from keras_ldrop import build_classifier

    model = build_classifier(_tiny_keras_hub_resnet(), 3, rate=0.5)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    for saved, restored in zip(model.weights, loaded.weights):
        assert restored.value.stride() == saved.value.stride()
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
