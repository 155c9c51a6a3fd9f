"""Max pooling as strided windows: XLA's values, XLA's gradient, and Keras' MaxPooling2D on JAX goes through it."""

import doctest

import keras
import numpy as np
import pytest

from keras_ldrop.training import cpu_convolution, strided_windows, window_max_pool

jax_only = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the JAX backend's max_pool"
)

CASES = [
    # height, width, pool, stride, padding
    (9, 9, (3, 3), (2, 2), "valid"),
    (8, 8, (3, 3), (2, 2), "same"),
    (9, 7, (2, 2), (2, 2), "same"),
    (10, 9, (3, 2), (1, 2), "same"),
    (7, 7, (2, 3), (3, 1), "valid"),
]


def _pooled_and_gradient(pool, inputs, output_weights):
    import jax

    outputs, pull_back = jax.vjp(pool, inputs)
    (gradient,) = pull_back(output_weights.astype(outputs.dtype))
    return np.asarray(outputs), np.asarray(gradient)


@pytest.mark.parametrize("height,width,size,stride,padding", CASES)
def test_same_values_and_gradient_as_xla_with_ties(height, width, size, stride, padding):
    import jax
    from jax import lax

    rng = np.random.default_rng(0)
    # Rectified and rounded: most windows hold their maximum more than once.
    inputs = np.maximum(np.round(rng.normal(size=(2, height, width, 3)), 1), 0).astype("float32")
    pads = tuple(map(tuple, lax.padtype_to_pads((height, width), size, stride, padding.upper())))

    def xla(x):
        return lax.reduce_window(x, -np.inf, lax.max, (1, *size, 1), (1, *stride, 1), padding.upper())

    def ours(x):
        return window_max_pool.max_pool(x, size, stride, pads)

    output_weights = rng.normal(size=jax.eval_shape(xla, inputs).shape)
    xla_outputs, xla_gradient = _pooled_and_gradient(xla, inputs, output_weights)
    outputs, gradient = _pooled_and_gradient(ours, inputs, output_weights)
    np.testing.assert_array_equal(outputs, xla_outputs)
    np.testing.assert_allclose(gradient, xla_gradient, rtol=1e-6, atol=1e-6)


def test_bfloat16_stays_bfloat16():
    import jax.numpy as jnp

    inputs = jnp.asarray(np.arange(32, dtype="float32").reshape(1, 4, 4, 2), jnp.bfloat16)
    outputs, gradient = _pooled_and_gradient(
        lambda x: window_max_pool.max_pool(x, (2, 2), (2, 2), ((0, 0), (0, 0))),
        inputs,
        np.ones((1, 2, 2, 2)),
    )
    assert outputs.dtype == gradient.dtype == jnp.bfloat16
    assert float(gradient.astype("float32").sum()) == 8.0


def test_the_examples_run():
    assert doctest.testmod(window_max_pool).failed == 0
    assert doctest.testmod(strided_windows).failed == 0


@jax_only
def test_keras_max_pooling_goes_through_it_and_keeps_keras_own_otherwise(monkeypatch):
    from keras.src.backend.jax import nn

    calls = []
    ours = window_max_pool.max_pool

    def counting(inputs, pool_size, strides, pads):
        calls.append((pool_size, strides, pads))
        return ours(inputs, pool_size, strides, pads)

    monkeypatch.setattr(window_max_pool, "max_pool", counting)
    cpu_convolution.use_xla_convolutions()  # as Keras has it, whatever ran before
    keras_max_pool = nn.max_pool
    cpu_convolution.use_cpu_convolutions()
    try:
        image = np.arange(2 * 7 * 7 * 3, dtype="float32").reshape(2, 7, 7, 3)
        assert keras.layers.MaxPooling2D(3, strides=2, padding="same")(image).shape == (2, 4, 4, 3)
        assert keras.layers.MaxPooling2D()(image).shape == (2, 3, 3, 3)
        assert calls == [((3, 3), (2, 2), ((1, 1), (1, 1))), ((2, 2), (2, 2), ((0, 0), (0, 0)))]
        for args in (
            (image.transpose(0, 3, 1, 2), 2, 2, "valid", "channels_first"),
            (image[:, 0], 2, 2, "valid", "channels_last"),
        ):
            np.testing.assert_array_equal(np.asarray(nn.max_pool(*args)), np.asarray(keras_max_pool(*args)))
        assert len(calls) == 2
    finally:
        cpu_convolution.use_xla_convolutions()
    assert nn.max_pool is keras_max_pool
