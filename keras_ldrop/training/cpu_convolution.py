"""Faster convolutions for the JAX backend on CPU.

XLA:CPU runs a convolution's forward pass well except for 1x1 kernels, and it
computes the two gradients (with respect to the input and to the kernel)
several times slower than the same arithmetic written as matrix products. On a
2-core CPU, a 1x1 convolution 512 -> 128 on 96 x 14 x 14 inputs took 22 ms
forward and 180 ms with both gradients, 59 ms with the gradients below; a
ResNet-50 fine-tuning step (112 px, 96 images) went from 10.45 to 5.53 s. Its grouped (depthwise)
convolutions are slow in both directions: 5-12x slower with gradients than
shifted products. See `benchmarks/conv_gradients.py`,
`benchmarks/depthwise_conv.py`, `benchmarks/compare_steps.py` and
BUILD_NOTES.md, "Fine-tuning step speed on this CPU".

`use_cpu_convolutions()` makes Keras' JAX `conv` keep XLA's forward pass,
except that a 1x1 kernel is the matrix product of the (strided) inputs and the
kernel (on this AVX2 CPU, 48 x 28 x 28 x 256 inputs -> 64 channels took 44 ms
as XLA's convolution, 8 ms as a product; BUILD_NOTES.md, "JAX's 1x1
convolutions"), and take its gradients as:

- kernel: `im2col(inputs)^T @ output_gradient` (for a 1x1 kernel, the inputs
  themselves);
- input: `output_gradient @ kernel^T` for a 1x1 kernel, scattered back at the
  stride; for a larger kernel with stride 1, the forward convolution of the
  output gradient with the flipped kernel; otherwise XLA's own gradient;

Keras' JAX `depthwise_conv` (so `DepthwiseConv2D` and `SeparableConv2D`)
compute `shifted_depthwise.depthwise_conv`, differentiated by JAX; its
`max_pool` (`MaxPooling2D`) computes `window_max_pool.max_pool`, whose
gradient avoids XLA's select-and-scatter (ResNet-50's stem pool, 48 images at
96 px: 155 -> 20 ms with the gradient).

The values are XLA's up to float rounding (the sums run in another order).
Grouped (other than depthwise), dilated, channels-first and non-2D
convolutions, and channels-first or non-2D pooling, keep Keras' own.
`use_where_faster()` switches this on only where it was measured to help:
the JAX backend running on CPU; on the torch backend it removes the layout
copies around Keras' convolution and max pooling instead
(`torch_convolution.py`), runs a
BatchNorm with fixed statistics as one kernel (`torch_batch_normalization.py`),
lets functional models drop each layer's output after its last use
(`functional_memory.py`), updates our SGD's variables with multi-tensor
operations (`torch_sgd.py`) and stores kernels in the memory order the
convolutions read (`torch_kernel_layout.py`). The training loop,
`inference.classify.classify_files` (predict, evaluate) and
`benchmarks/train_step.py` call it; `use_keras_own()` undoes it.

Example:

>>> from keras_ldrop.training.cpu_convolution import use_where_faster
>>> use_where_faster() in (True, False)
True
"""

import functools

import keras

from keras_ldrop.training import (
    functional_memory,
    shifted_depthwise,
    torch_batch_normalization,
    torch_convolution,
    torch_kernel_layout,
    torch_sgd,
    window_max_pool,
)
from keras_ldrop.training.keras_swap import KerasSwap
from keras_ldrop.training.strided_windows import strided_windows


def use_where_faster():
    """Uses the faster convolutions where they were measured to help.

    JAX on CPU: `use_cpu_convolutions()`. torch (any device: the kernels see
    the same tensors as in Keras' own; measured on CPU): Keras' convolution
    and max pooling without their layout copies,
    `torch_convolution.use_zero_copy_convolutions()`,
    frozen BatchNorm as one kernel,
    `torch_batch_normalization.use_fused_batch_normalization()`, each
    layer's output let go after its last use,
    `functional_memory.release_layer_outputs()`, our SGD's update as
    multi-tensor operations, `torch_sgd.use_foreach_sgd_update()`, and the
    kernels created afterwards stored channels-last,
    `torch_kernel_layout.use_channels_last_kernels()`.

    Returns:
        Whether they are in use.
    """
    if keras.backend.backend() == "torch":
        torch_convolution.use_zero_copy_convolutions()
        torch_batch_normalization.use_fused_batch_normalization()
        functional_memory.release_layer_outputs()
        torch_sgd.use_foreach_sgd_update()
        torch_kernel_layout.use_channels_last_kernels()
        return True
    if keras.backend.backend() != "jax":
        return False
    import jax

    if jax.default_backend() != "cpu":
        return False
    use_cpu_convolutions()
    return True


def use_keras_own():
    """Undoes `use_where_faster()`: Keras' own functions on every backend."""
    if keras.backend.backend() == "torch":
        torch_convolution.use_keras_convolutions()
        torch_batch_normalization.use_keras_batch_normalization()
        functional_memory.keep_layer_outputs()
        torch_sgd.use_per_variable_sgd_update()
        torch_kernel_layout.use_keras_kernel_layout()
    use_xla_convolutions()


def use_cpu_convolutions():
    """Makes Keras' JAX `conv`, `depthwise_conv` and `max_pool` the faster ones above.

    Idempotent; `use_xla_convolutions()` undoes it.

    Raises:
        RuntimeError: the Keras backend is not JAX.
    """
    _SWAP.apply()


def use_xla_convolutions():
    """Restores Keras' own JAX convolutions and max pooling (XLA's)."""
    _SWAP.undo()


def uses_cpu_convolutions():
    """Whether `use_cpu_convolutions()` is in effect."""
    return _SWAP.applied


def _window_arguments(inputs, window_size, strides, padding, data_format):
    """`(window_size, strides, pads)` of a channels-last 2D window, or `None` to keep Keras' own."""
    data_format = data_format or keras.config.image_data_format()
    pair_size, pair_strides = _pair(window_size), _pair(strides)
    if (
        data_format != "channels_last"
        or len(inputs.shape) != 4
        or pair_size is None
        or pair_strides is None
        or padding.lower() not in ("valid", "same")
    ):
        return None
    from jax import lax

    pads = lax.padtype_to_pads(inputs.shape[1:3], pair_size, pair_strides, padding.upper())
    return pair_size, pair_strides, tuple(map(tuple, pads))


def _our_arguments(inputs, kernel, strides, padding, data_format, dilation_rate):
    """`(inputs, kernel, strides, pads)` for our convolutions, or `None` to keep Keras' own."""
    if (
        len(kernel.shape) != 4
        or inputs.shape[-1] != kernel.shape[-2]
        or _pair(dilation_rate) != (1, 1)
    ):
        return None
    window = _window_arguments(inputs, kernel.shape[:2], strides, padding, data_format)
    if window is None:
        return None
    _, pair_strides, pads = window
    kernel = keras.ops.convert_to_tensor(kernel)
    inputs = keras.ops.convert_to_tensor(inputs, dtype=kernel.dtype)
    return inputs, kernel, pair_strides, pads


def _conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    ours = _our_arguments(inputs, kernel, strides, padding, data_format, dilation_rate)
    if ours is None:
        return _SWAP.keras_own["conv"](
            inputs, kernel, strides, padding, data_format, dilation_rate
        )
    return _convolution(*ours)


def _depthwise_conv(
    inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1
):
    ours = _our_arguments(inputs, kernel, strides, padding, data_format, dilation_rate)
    if ours is None:
        return _SWAP.keras_own["depthwise_conv"](
            inputs, kernel, strides, padding, data_format, dilation_rate
        )
    return shifted_depthwise.depthwise_conv(*ours)


def _max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    window = _window_arguments(
        inputs, pool_size, pool_size if strides is None else strides, padding, data_format
    )
    if window is None:
        return _SWAP.keras_own["max_pool"](inputs, pool_size, strides, padding, data_format)
    return window_max_pool.max_pool(keras.ops.convert_to_tensor(inputs), *window)


def _pair(value):
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    return value if len(value) == 2 else None


def _xla_convolution(inputs, kernel, strides, pads):
    from jax import lax

    return lax.conv_general_dilated(
        inputs, kernel, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _forward_convolution(inputs, kernel, strides, pads):
    """XLA's convolution; a 1x1 kernel as the matrix product it is (2-5x faster here)."""
    if kernel.shape[:2] != (1, 1):
        return _xla_convolution(inputs, kernel, strides, pads)
    strided = inputs[:, :: strides[0], :: strides[1]]  # a 1x1 kernel has no padding
    cin, cout = kernel.shape[2:]
    outputs = strided.reshape(-1, cin) @ kernel.reshape(cin, cout)
    return outputs.reshape(*strided.shape[:3], cout)


@functools.cache
def _custom_vjp_convolution():
    import jax

    convolution = jax.custom_vjp(_forward_convolution, nondiff_argnums=(2, 3))

    def forward(inputs, kernel, strides, pads):
        return _forward_convolution(inputs, kernel, strides, pads), (inputs, kernel)

    def backward(strides, pads, saved, output_gradient):
        inputs, kernel = saved
        return (
            _input_gradient(inputs, kernel, strides, pads, output_gradient),
            _kernel_gradient(inputs, kernel, strides, pads, output_gradient),
        )

    convolution.defvjp(forward, backward)
    return convolution


def _convolution(inputs, kernel, strides, pads):
    return _custom_vjp_convolution()(inputs, kernel, strides, pads)


def _kernel_gradient(inputs, kernel, strides, pads, output_gradient):
    import jax.numpy as jnp

    kh, kw, cin, cout = kernel.shape
    output_shape = output_gradient.shape[1:3]
    padded = jnp.pad(inputs, ((0, 0), pads[0], pads[1], (0, 0)))
    columns = jnp.concatenate(
        [window for _, window in strided_windows(padded, (kh, kw), strides, output_shape)],
        axis=-1,
    )
    gradient = columns.reshape(-1, kh * kw * cin).T @ output_gradient.reshape(-1, cout)
    return gradient.reshape(kernel.shape).astype(kernel.dtype)


def _input_gradient(inputs, kernel, strides, pads, output_gradient):
    import jax
    import jax.numpy as jnp
    from jax import lax

    kh, kw, cin, cout = kernel.shape
    batch, oh, ow, _ = output_gradient.shape
    height, width = inputs.shape[1:3]
    if (kh, kw) == (1, 1):  # no padding: a 1x1 window never needs it
        gradient = output_gradient.reshape(-1, cout) @ kernel.reshape(cin, cout).T
        spread = [
            (0, size - stride * (steps - 1) - 1, stride - 1)
            for size, stride, steps in zip((height, width), strides, (oh, ow))
        ]
        gradient = lax.pad(
            gradient.reshape(batch, oh, ow, cin),
            jnp.zeros((), gradient.dtype),
            [(0, 0, 0), *spread, (0, 0, 0)],
        )
    elif strides == (1, 1):
        flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
        transposed_pads = (
            (kh - 1 - pads[0][0], kh - 1 - pads[0][1]),
            (kw - 1 - pads[1][0], kw - 1 - pads[1][1]),
        )
        gradient = _xla_convolution(output_gradient, flipped, (1, 1), transposed_pads)
        gradient = gradient[:, :height, :width]
    else:
        _, vjp = jax.vjp(lambda x: _xla_convolution(x, kernel, strides, pads), inputs)
        (gradient,) = vjp(output_gradient)
    return gradient.astype(inputs.dtype)


_SWAP = KerasSwap(
    "The CPU convolution",
    "keras.src.backend.jax.nn",
    "jax",
    conv=_conv,
    depthwise_conv=_depthwise_conv,
    max_pool=_max_pool,
)
