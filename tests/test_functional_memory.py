"""Functional models that let go of each layer's output after its last use: Keras' values, less memory."""

import weakref

import keras
import numpy as np
import pytest

from keras_ldrop.training import cpu_convolution, functional_memory
from tests.conftest import _tiny_keras_hub_resnet
from tests.test_cpu_convolution import _tiny_depthwise_backbone, assert_fine_tuning_matches


@pytest.fixture
def released():
    functional_memory.release_layer_outputs()
    yield
    functional_memory.keep_layer_outputs()


class Remember(keras.layers.Layer):
    """Doubles its input and keeps a weak reference to the result."""

    def call(self, inputs):
        outputs = inputs * 2.0
        self.output_reference = weakref.ref(outputs)
        return outputs


class SeeWhetherAlive(keras.layers.Layer):
    """Passes its input on, noting whether `remember`'s last output still exists."""

    def __init__(self, remember, **kwargs):
        super().__init__(**kwargs)
        self.remember = remember

    def call(self, inputs):
        self.saw_it_alive = self.remember.output_reference() is not None
        return inputs


def remember_then_look():
    inputs = keras.Input((4,))
    remember = Remember()
    look = SeeWhetherAlive(remember)
    outputs = look(keras.layers.Activation("relu")(remember(inputs)))
    return keras.Model(inputs, outputs), look


def test_keras_own_keeps_an_output_until_the_end():
    functional_memory.keep_layer_outputs()
    model, look = remember_then_look()
    model(np.ones((2, 4), "float32"))
    assert look.saw_it_alive


def test_an_output_is_gone_after_its_last_use(released):
    model, look = remember_then_look()
    outputs = model(np.ones((2, 4), "float32"))
    assert not look.saw_it_alive
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs), np.full((2, 4), 2.0))


def branching_model():
    """Two outputs (one also read by a later layer), a shared layer, a layer reading one tensor twice, a nested model."""
    keras.utils.set_random_seed(0)
    inner_inputs = keras.Input((6,))
    inner = keras.Model(inner_inputs, keras.layers.Dense(6, activation="tanh")(inner_inputs))
    inputs = keras.Input((5,))
    shared = keras.layers.Dense(6)
    first = shared(inputs)
    doubled = keras.layers.Add()([first, first])
    second = shared(keras.layers.Dense(5)(doubled))
    combined = keras.layers.Multiply()([inner(second), first])
    return keras.Model(inputs, {"first": first, "combined": combined})


def test_values_are_keras_own():
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    functional_memory.keep_layer_outputs()
    expected = branching_model()(x)
    functional_memory.release_layer_outputs()
    try:
        outputs = branching_model()(x)
    finally:
        functional_memory.keep_layer_outputs()
    assert set(outputs) == {"first", "combined"}
    for name in outputs:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(outputs[name]), keras.ops.convert_to_numpy(expected[name])
        )


@pytest.mark.parametrize("backbone", [_tiny_keras_hub_resnet, _tiny_depthwise_backbone])
def test_fine_tuning_gives_keras_own_weights_bit_for_bit(backbone):
    assert_fine_tuning_matches(backbone, functional_memory.keep_layer_outputs, functional_memory.release_layer_outputs)


def test_fine_tuning_uses_it_on_the_torch_backend_only():
    functional_memory.keep_layer_outputs()
    try:
        cpu_convolution.use_where_faster()
        assert functional_memory.releases_layer_outputs() == (keras.backend.backend() == "torch")
    finally:
        functional_memory.keep_layer_outputs()
        if keras.backend.backend() == "jax":
            cpu_convolution.use_xla_convolutions()
