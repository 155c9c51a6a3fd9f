import math

import keras
import numpy as np
import pytest

from keras_ldrop.layers import LargeDropout


@pytest.mark.parametrize(
    "rate", [-0.1, 1.0, 1.5, math.nan, "0.9", True, None]
)
def test_rejects_rates_outside_the_unit_interval(rate):
    with pytest.raises(ValueError, match="rate") as error:
        LargeDropout(rate)
    assert repr(rate) in str(error.value)


@pytest.mark.parametrize("rate", [0.5, 0.9, 0.95])
def test_training_statistics_match_inverted_dropout(rate):
    layer = LargeDropout(rate, seed=1)
    x = np.ones((200, 1000), "float32")
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    kept = y != 0
    # 200k Bernoulli draws: 5 standard deviations of the kept fraction.
    tolerance = 5 * math.sqrt(rate * (1 - rate) / y.size)
    assert abs(kept.mean() - (1 - rate)) < tolerance
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)
    assert abs(y.mean() - 1.0) < tolerance / (1 - rate)


def test_identity_at_inference():
    layer = LargeDropout(0.9, seed=0)
    x = np.random.RandomState(0).normal(size=(4, 16)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(x, training=False)), x
    )


def test_rate_zero_is_identity_in_training():
    x = np.ones((3, 5), "float32")
    y = LargeDropout(0.0)(x, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), x)


def test_seeded_layers_repeat_and_successive_calls_differ():
    x = np.ones((8, 256), "float32")
    first, second = LargeDropout(0.9, seed=7), LargeDropout(0.9, seed=7)
    a = keras.ops.convert_to_numpy(first(x, training=True))
    b = keras.ops.convert_to_numpy(second(x, training=True))
    np.testing.assert_array_equal(a, b)
    c = keras.ops.convert_to_numpy(first(x, training=True))
    assert (a != c).any()


def test_noise_shape_broadcasts_one_mask_over_tokens():
    layer = LargeDropout(0.5, noise_shape=(None, 1, None), seed=3)
    y = keras.ops.convert_to_numpy(
        layer(np.ones((2, 5, 64), "float32"), training=True)
    )
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1, :], y.shape))
    assert 0 < (y != 0).mean() < 1


@pytest.mark.parametrize("noise_shape", ["abc", (0, 4), (2.5,), 3])
def test_rejects_bad_noise_shapes(noise_shape):
    with pytest.raises(ValueError, match="noise_shape"):
        LargeDropout(0.9, noise_shape=noise_shape)


def test_noise_shape_rank_mismatch_names_both_shapes():
    layer = LargeDropout(0.5, noise_shape=(None, 1))
    with pytest.raises(ValueError, match="2 dimensions but the input has 3"):
        layer(np.ones((2, 3, 4), "float32"), training=True)


def test_config_round_trip_and_registered_serialization():
    layer = LargeDropout(0.95, noise_shape=(None, 1, None), seed=5, name="ld")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is LargeDropout
    assert restored.get_config() == layer.get_config()
    assert restored.rate == 0.95 and restored.noise_shape == (None, 1, None)


def test_masks_change_every_step_inside_compiled_training():
    """The generator's state is a variable, so a compiled (jit/graph) train
    step draws a fresh mask each time instead of baking in one."""
    inputs = keras.Input((64,))
    outputs = LargeDropout(0.5, seed=0, name="drop")(inputs)
    model = keras.Model(inputs, outputs)
    seeds = model.get_layer("drop").seed_generator.state
    before = keras.ops.convert_to_numpy(seeds).copy()
    model.compile(loss="mse", optimizer="sgd")
    x = np.ones((4, 64), "float32")
    model.train_on_batch(x, x)
    middle = keras.ops.convert_to_numpy(seeds).copy()
    model.train_on_batch(x, x)
    after = keras.ops.convert_to_numpy(seeds)
    assert (before != middle).any() and (middle != after).any()


@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed:UserWarning")
@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
@pytest.mark.parametrize(
    "init_kwargs, input_shape",
    [
        ({"rate": 0.5}, (2, 3)),
        ({"rate": 0.9, "noise_shape": (None, 1, None), "seed": 1337}, (2, 5, 3)),
    ],
)
def test_passes_keras_own_layer_harness_like_keras_dropout(init_kwargs, input_shape):
    """The checks `keras.layers.Dropout` passes in Keras' dropout_test, including
    built at instantiation, but not when a subclass overrides `build`."""
    from keras.src import testing

    testing.TestCase().run_layer_test(
        LargeDropout,
        init_kwargs=init_kwargs,
        input_shape=input_shape,
        call_kwargs={"training": True},
        expected_output_shape=input_shape,
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=1,
        expected_num_losses=0,
        supports_masking=True,
        assert_built_after_instantiation=True,
    )
