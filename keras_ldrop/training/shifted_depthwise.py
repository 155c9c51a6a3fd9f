"""A depthwise convolution written as a sum of shifted, channel-wise products.

XLA:CPU runs grouped (depthwise) convolutions slowly: for EfficientNet-Lite0's
shapes (64 images at 96 px) its forward pass took 29-184 ms and the forward
pass with both gradients 359-948 ms, against 2-18 ms and 48-122 ms for the
same arithmetic written as below and differentiated by JAX
(`benchmarks/depthwise_conv.py`, BUILD_NOTES.md; gradients written out by
hand instead of JAX's were no faster in a whole EfficientNet-Lite0 step).
For a `kh x kw` kernel the output is the sum of `kh * kw` strided windows of
the padded input, each multiplied channel by channel by one tap of the kernel. Lower-precision inputs
(bfloat16, float16) are summed in float32 and rounded once at the end.

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

from keras_ldrop.training.strided_windows import strided_windows


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
        `keras.ops.depthwise_conv` orders them.
    """
    import jax.numpy as jnp

    inputs, kernel = jnp.asarray(inputs), jnp.asarray(kernel)
    _, height, width, channels = inputs.shape
    kh, kw, _, multiplier = kernel.shape
    (sh, sw), ((top, bottom), (left, right)) = strides, pads
    out_height = (height + top + bottom - kh) // sh + 1
    out_width = (width + left + right - kw) // sw + 1
    summation = jnp.promote_types(inputs.dtype, jnp.float32)
    padded = jnp.pad(inputs, ((0, 0), (top, bottom), (left, right), (0, 0)))
    if multiplier > 1:
        padded = jnp.repeat(padded, multiplier, axis=-1)
    padded = padded.astype(summation)
    taps = kernel.astype(summation).reshape(kh, kw, channels * multiplier)
    outputs = None
    for (row, column), window in strided_windows(padded, (kh, kw), (sh, sw), (out_height, out_width)):
        product = window * taps[row, column]
        outputs = product if outputs is None else outputs + product
    return outputs.astype(inputs.dtype)
