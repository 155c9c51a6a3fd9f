"""The strided windows of a padded channels-last batch, one per window offset.

What our JAX convolutions and pooling build on: for a `kh x kw` window moved
by `(sh, sw)`, the window at offset `(i, j)` holds `padded[:, i + sh*y, j + sw*x]`
for every output position `(y, x)`. `shifted_depthwise` multiplies each by
one tap, `window_max_pool` takes their maximum, `cpu_convolution`
concatenates them into im2col columns.

Example:

>>> import numpy as np
>>> from keras_ldrop.training.strided_windows import strided_windows
>>> padded = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
>>> [(offset, np.asarray(window)[0, :, :, 0].tolist())
...  for offset, window in strided_windows(padded, (1, 2), (2, 2), (2, 2))]
[((0, 0), [[0.0, 2.0], [8.0, 10.0]]), ((0, 1), [[1.0, 3.0], [9.0, 11.0]])]
"""


def strided_windows(padded, window_size, strides, output_shape):
    """Yields `((i, j), window)` for every offset of a `window_size` window, row by row.

    Args:
        padded: `[batch, height, width, channels]`, already padded.
        window_size: `(kh, kw)`.
        strides: `(sh, sw)`.
        output_shape: `(out_height, out_width)`.
    """
    from jax import lax

    batch, _, _, channels = padded.shape
    (sh, sw), (out_height, out_width) = strides, output_shape
    for i in range(window_size[0]):
        for j in range(window_size[1]):
            yield (i, j), lax.slice(
                padded,
                (0, i, j, 0),
                (batch, i + sh * (out_height - 1) + 1, j + sw * (out_width - 1) + 1, channels),
                (1, sh, sw, 1),
            )
