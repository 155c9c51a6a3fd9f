"""Max pooling as the maximum of strided windows, with a gradient XLA:CPU runs fast.

JAX differentiates `lax.reduce_window` max into a select-and-scatter, which
XLA:CPU runs as a reduction over index arrays and a scatter: for ResNet-50's
stem pool (48 images, 48 x 48 x 64 padded to 50 x 50, 3 x 3 window, stride 2)
the forward pass took 10 ms and the forward pass with the gradient 155 ms,
against 6 and 20 ms written as below (`benchmarks/max_pool.py`; BUILD_NOTES.md,
"JAX's step traced").
The output is the maximum of the `ph * pw` strided windows of the padded input
(exactly XLA's). The gradient goes, as in XLA's, to the first position of each
window (in row-major order) that holds the maximum; where windows overlap, the
contributions are summed in another order than XLA's (float rounding).

Example:

>>> import numpy as np
>>> from keras_ldrop.training.window_max_pool import max_pool
>>> inputs = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
>>> np.asarray(max_pool(inputs, (2, 2), (2, 2), ((0, 0), (0, 0))))[0, :, :, 0]
array([[ 5.,  7.],
       [13., 15.]], dtype=float32)
"""

import functools

from keras_ldrop.training.strided_windows import strided_windows


def max_pool(inputs, pool_size, strides, pads):
    """A channels-last 2D max pooling.

    Args:
        inputs: `[batch, height, width, channels]`.
        pool_size: `(ph, pw)`.
        strides: `(sh, sw)`.
        pads: `((top, bottom), (left, right))`, as `jax.lax.padtype_to_pads`
            gives them; padded positions hold minus infinity.

    Returns:
        `[batch, out_height, out_width, channels]`.
    """
    return _custom_vjp_max_pool()(inputs, pool_size, strides, pads)


def _padded(inputs, pads):
    import jax.numpy as jnp

    return jnp.pad(inputs, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)


def _forward(inputs, pool_size, strides, pads):
    import jax.numpy as jnp

    padded = _padded(inputs, pads)
    output_shape = tuple(
        (padded.shape[axis + 1] - pool_size[axis]) // strides[axis] + 1 for axis in (0, 1)
    )
    windows = (window for _, window in strided_windows(padded, pool_size, strides, output_shape))
    return functools.reduce(jnp.maximum, windows)


def _gradient(pool_size, strides, pads, saved, output_gradient):
    """Each output's gradient to the first position of its window that holds the maximum."""
    import jax.numpy as jnp
    from jax import lax

    inputs, outputs = saved
    padded = _padded(inputs, pads)
    output_shape = outputs.shape[1:3]
    zero = jnp.zeros((), output_gradient.dtype)
    taken = jnp.zeros(outputs.shape, bool)
    gradient = jnp.zeros(padded.shape, output_gradient.dtype)
    for (i, j), window in strided_windows(padded, pool_size, strides, output_shape):
        first = (window == outputs) & ~taken
        taken = taken | first
        spread = [
            (offset, padded.shape[axis + 1] - offset - stride * (size - 1) - 1, stride - 1)
            for axis, (offset, stride, size) in enumerate(zip((i, j), strides, output_shape))
        ]
        gradient = gradient + lax.pad(
            jnp.where(first, output_gradient, zero), zero, [(0, 0, 0), *spread, (0, 0, 0)]
        )
    (top, _), (left, _) = pads
    height, width = inputs.shape[1:3]
    return (gradient[:, top : top + height, left : left + width],)


@functools.cache
def _custom_vjp_max_pool():
    import jax

    pool = jax.custom_vjp(_forward, nondiff_argnums=(1, 2, 3))

    def forward(inputs, pool_size, strides, pads):
        outputs = _forward(inputs, pool_size, strides, pads)
        return outputs, (inputs, outputs)

    pool.defvjp(forward, _gradient)
    return pool
