"""KerasSwap: ours in place of Keras' own, idempotent, undone, refused on another backend."""

import types

import keras
import pytest

from keras_ldrop.training.keras_swap import KerasSwap


def test_ours_in_place_then_keras_own_back():
    module = types.SimpleNamespace(double=lambda x: 2 * x, keep=abs)
    keras_double = module.double
    swap = KerasSwap("Our double", lambda: module, double=lambda x: [x, x])
    swap.apply()
    swap.apply()
    assert swap.applied and module.double(3) == [3, 3] and module.keep is abs
    assert swap.keras_own == {"double": keras_double}
    swap.undo()
    assert not swap.applied and module.double is keras_double
    swap.undo()
    assert module.double is keras_double


def test_another_backend_is_refused_and_nothing_changes():
    other = next(name for name in ("jax", "torch") if name != keras.backend.backend())
    module = types.SimpleNamespace(double=lambda x: 2 * x)
    keras_double = module.double
    swap = KerasSwap("Our double", lambda: module, other, double=lambda x: [x, x])
    with pytest.raises(RuntimeError, match=f"Our double is for the {other} backend; KERAS_BACKEND is"):
        swap.apply()
    assert not swap.applied and module.double is keras_double
