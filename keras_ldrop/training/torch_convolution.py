"""Keras' torch convolution and max pooling without their layout copies.

For channels-last inputs, Keras 3.15's torch `conv` permutes the NHWC tensor
to NCHW and makes it contiguous (a copy), then converts it back to the
channels-last memory format (a second copy) for oneDNN. But a permuted NHWC
tensor already *is* an NCHW tensor in channels-last memory format, so
`use_zero_copy_convolutions()` hands the permuted view (and the kernel in
channels-last format) straight to `torch.nn.functional.conv2d`. oneDNN sees
the same bytes in the same layout, so the outputs and gradients are Keras'
own, bit for bit; an EfficientNet-Lite0 fine-tuning step (64 images at
96 px, one thread) went from 1.54-1.58 to 1.16-1.19 CPU seconds
(BUILD_NOTES.md, "The torch backend"). It covers `Conv2D`, `DepthwiseConv2D`
and `SeparableConv2D` (Keras' torch `depthwise_conv` calls `conv`);
channels-first, dilated-with-"same", 1D and 3D convolutions keep Keras' own.
Keras' torch `max_pool` likewise copies its NHWC input to a contiguous NCHW
tensor; ours hands the permuted view to `torch.nn.functional.max_pool2d`,
whose channels-last kernel takes the same maximum of the same window (the
pool's values and input gradient bit for bit). The layers below then receive
that gradient channels-last instead of as a permuted NCHW tensor, and oneDNN
sums their kernel gradients in another order: fine-tuned weights equal Keras'
to float rounding. A ResNet-50 step (96 px, 48 images) went from 1.368 to
1.332 s (BUILD_NOTES.md, "Kernels stored channels-last"). Channels-first,
non-2D and asymmetric "same" pooling keep Keras' own.

Example:

>>> import keras
>>> from keras_ldrop.training import torch_convolution
>>> if keras.backend.backend() == "torch":
...     torch_convolution.use_zero_copy_convolutions()
"""

import keras

from keras_ldrop.training.keras_swap import KerasSwap


def use_zero_copy_convolutions():
    """Makes Keras' torch `conv` and `max_pool` pass channels-last tensors without copies.

    Idempotent; `use_keras_convolutions()` undoes it.

    Raises:
        RuntimeError: the Keras backend is not torch.
    """
    _SWAP.apply()


def use_keras_convolutions():
    """Restores Keras' own torch `conv` and `max_pool`."""
    _SWAP.undo()


def uses_zero_copy_convolutions():
    """Whether `use_zero_copy_convolutions()` is in effect."""
    return _SWAP.applied


def _pair(value):
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    return value if len(value) == 2 else None


def _same_padding(spatial_shape, window, strides):
    """TensorFlow's "same" padding of a 2D window: `((top, bottom), (left, right))`."""
    pads = []
    for size, length, stride in zip(spatial_shape, window, strides):
        total = max((-(-size // stride) - 1) * stride + length - size, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    import torch
    from keras.src.backend.torch.core import convert_to_tensor

    data_format = data_format or keras.config.image_data_format()
    pair_strides, dilation = _pair(strides), _pair(dilation_rate)
    if (
        data_format != "channels_last"
        or len(inputs.shape) != 4
        or len(kernel.shape) != 4
        or pair_strides is None
        or dilation is None
        or padding.lower() not in ("valid", "same")
        or (padding.lower() == "same" and dilation != (1, 1))
        or inputs.shape[-1] % kernel.shape[-2]
    ):
        return _SWAP.keras_own["conv"](inputs, kernel, strides, padding, data_format, dilation_rate)
    inputs = convert_to_tensor(inputs).permute(0, 3, 1, 2)
    kernel = convert_to_tensor(kernel).permute(3, 2, 0, 1)
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    kernel = kernel.contiguous(memory_format=torch.channels_last)
    pads = (0, 0)
    if padding.lower() == "same":
        (top, bottom), (left, right) = _same_padding(inputs.shape[2:], kernel.shape[2:], pair_strides)
        if (top, left) == (bottom, right):
            pads = (top, left)
        else:
            inputs = torch.nn.functional.pad(inputs, (left, right, top, bottom))
    outputs = torch.nn.functional.conv2d(
        inputs,
        kernel,
        stride=pair_strides,
        padding=pads,
        dilation=dilation,
        groups=inputs.shape[1] // kernel.shape[1],
    )
    return outputs.permute(0, 2, 3, 1)


def _max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    import torch
    from keras.src.backend.torch.core import convert_to_tensor

    inputs = convert_to_tensor(inputs)
    data_format = data_format or keras.config.image_data_format()
    pair_size = _pair(pool_size)
    pair_strides = pair_size if strides is None else _pair(strides)
    if (
        data_format != "channels_last"
        or inputs.ndim != 4
        or inputs.is_meta  # Keras' own pools a stand-in tensor for shape inference
        or pair_size is None
        or pair_strides is None
        or padding.lower() not in ("valid", "same")
    ):
        return _SWAP.keras_own["max_pool"](inputs, pool_size, strides, padding, data_format)
    pads = (0, 0)
    if padding.lower() == "same":
        (top, bottom), (left, right) = _same_padding(inputs.shape[1:3], pair_size, pair_strides)
        if (top, left) != (bottom, right):
            return _SWAP.keras_own["max_pool"](inputs, pool_size, strides, padding, data_format)
        pads = (top, left)
    outputs = torch.nn.functional.max_pool2d(
        inputs.permute(0, 3, 1, 2), pair_size, pair_strides, pads
    )
    return outputs.permute(0, 2, 3, 1)


_SWAP = KerasSwap(
    "The zero-copy convolution",
    "keras.src.backend.torch.nn",
    "torch",
    conv=_conv,
    max_pool=_max_pool,
)
