"""A depthwise convolution written as sums of shifted, channel-wise products.

XLA:CPU runs grouped (depthwise) convolutions slowly: for EfficientNet-Lite0's
shapes (64 images at 96 px) its forward pass took 29-184 ms and the forward
pass with both gradients 359-778 ms (`benchmarks/depthwise_conv.py`,
BUILD_NOTES.md). Here, for a `kh x kw` kernel:

- the output is the sum of `kh * kw` strided windows of the padded input, each
  multiplied channel by channel by one tap of the kernel;
- the input gradient is the same sum over the output gradient spread back to
  the input's grid (zeros between rows and columns at stride > 1), with the
  kernel flipped;
- the kernel gradient of each tap is its window of the padded input times the
  output gradient, summed over images and positions.

Lower-precision inputs (bfloat16, float16) are summed in float32 and rounded
once at the end.

Example:

>>> import numpy as np
>>> from keras_ldrop.training.shifted_depthwise import depthwise_conv
>>> inputs = np.ones((1, 4, 4, 2), "float32")
>>> kernel = np.ones((3, 3, 2, 1), "float32")
>>> np.asarray(depthwise_conv(inputs, kernel, (1, 1), ((1, 1), (1, 1))))[0, :, :, 0]
array([[4., 6., 6., 4.],
       [6., 9., 9., 6.],
       [6., 9., 9., 6.],
       [4., 6., 6., 4.]], dtype=float32)
"""

import functools


def depthwise_conv(inputs, kernel, strides, pads):
    """A channels-last 2D depthwise convolution, without dilation.

    Args:
        inputs: `[batch, height, width, channels]`.
        kernel: `[kh, kw, channels, multiplier]`.
        strides: `(sh, sw)`.
        pads: `((top, bottom), (left, right))`, as `jax.lax.padtype_to_pads`
            gives them.

    Returns:
        `[batch, out_height, out_width, channels * multiplier]`, output channel
        `c * multiplier + m` from input channel `c` and kernel column `m`, as
        `keras.ops.depthwise_conv` orders them; differentiable by JAX.
    """
    import jax.numpy as jnp

    strides = tuple(strides)
    pads = tuple(tuple(pad) for pad in pads)
    return _custom_vjp_depthwise_conv()(jnp.asarray(inputs), jnp.asarray(kernel), strides, pads)


def _summation_dtype(dtype):
    import jax.numpy as jnp

    return jnp.promote_types(dtype, jnp.float32)


def _padded_channels(inputs, pads, multiplier):
    """The padded input in float32 (or wider), each channel repeated `multiplier` times."""
    import jax.numpy as jnp

    padded = jnp.pad(inputs, ((0, 0), *pads, (0, 0)))
    if multiplier > 1:
        padded = jnp.repeat(padded, multiplier, axis=-1)
    return padded.astype(_summation_dtype(inputs.dtype))


def _window(padded, row, column, strides, output_shape):
    """`padded[:, row + sh*y, column + sw*x, :]` for every output position (y, x)."""
    from jax import lax

    (sh, sw), (out_height, out_width) = strides, output_shape
    return lax.slice(
        padded,
        (0, row, column, 0),
        (
            padded.shape[0],
            row + (out_height - 1) * sh + 1,
            column + (out_width - 1) * sw + 1,
            padded.shape[3],
        ),
        (1, sh, sw, 1),
    )


def _sum_of_taps(padded, taps, strides, output_shape):
    """`sum_ij window_ij(padded) * taps[i, j]`: the forward pass's arithmetic."""
    total = None
    for row in range(taps.shape[0]):
        for column in range(taps.shape[1]):
            product = _window(padded, row, column, strides, output_shape) * taps[row, column]
            total = product if total is None else total + product
    return total


def _output_shape(inputs, kernel, strides, pads):
    (sh, sw), ((top, bottom), (left, right)) = strides, pads
    kh, kw = kernel.shape[:2]
    return (
        (inputs.shape[1] + top + bottom - kh) // sh + 1,
        (inputs.shape[2] + left + right - kw) // sw + 1,
    )


def _forward(inputs, kernel, strides, pads):
    kh, kw, channels, multiplier = kernel.shape
    padded = _padded_channels(inputs, pads, multiplier)
    taps = kernel.astype(padded.dtype).reshape(kh, kw, channels * multiplier)
    outputs = _sum_of_taps(padded, taps, strides, _output_shape(inputs, kernel, strides, pads))
    return outputs.astype(inputs.dtype)


def _input_gradient(inputs, kernel, strides, pads, output_gradient):
    from jax import lax

    kh, kw, channels, multiplier = kernel.shape
    batch, height, width, _ = inputs.shape
    (sh, sw), ((top, bottom), (left, right)) = strides, pads
    padded_height, padded_width = height + top + bottom, width + left + right
    out_height, out_width = output_gradient.shape[1:3]
    summation = _summation_dtype(inputs.dtype)
    spread = lax.pad(
        output_gradient.astype(summation),
        summation.type(0),
        (
            (0, 0, 0),
            (kh - 1, padded_height - (out_height - 1) * sh - 1, sh - 1),
            (kw - 1, padded_width - (out_width - 1) * sw - 1, sw - 1),
            (0, 0, 0),
        ),
    )
    flipped = kernel[::-1, ::-1].astype(summation).reshape(kh, kw, channels * multiplier)
    padded_gradient = _sum_of_taps(spread, flipped, (1, 1), (padded_height, padded_width))
    padded_gradient = padded_gradient.reshape(
        batch, padded_height, padded_width, channels, multiplier
    ).sum(axis=-1)
    gradient = padded_gradient[:, top : top + height, left : left + width]
    return gradient.astype(inputs.dtype)


def _kernel_gradient(inputs, kernel, strides, pads, output_gradient):
    import jax.numpy as jnp

    kh, kw, channels, multiplier = kernel.shape
    padded = _padded_channels(inputs, pads, multiplier)
    gradient = output_gradient.astype(padded.dtype)
    output_shape = gradient.shape[1:3]
    taps = [
        jnp.sum(_window(padded, row, column, strides, output_shape) * gradient, axis=(0, 1, 2))
        for row in range(kh)
        for column in range(kw)
    ]
    return jnp.stack(taps).reshape(kernel.shape).astype(kernel.dtype)


@functools.cache
def _custom_vjp_depthwise_conv():
    import jax

    convolution = jax.custom_vjp(_forward, nondiff_argnums=(2, 3))

    def forward(inputs, kernel, strides, pads):
        return _forward(inputs, kernel, strides, pads), (inputs, kernel)

    def backward(strides, pads, saved, output_gradient):
        inputs, kernel = saved
        return (
            _input_gradient(inputs, kernel, strides, pads, output_gradient),
            _kernel_gradient(inputs, kernel, strides, pads, output_gradient),
        )

    convolution.defvjp(forward, backward)
    return convolution
