"""KerasSwap: ours in place of Keras' own, idempotent, undone, refused on another backend."""

import sys
import types

import keras
import pytest

from keras_ldrop.training.keras_swap import KerasSwap


def toy_module(monkeypatch):
    """A module `toy_keras_module` with `double` and `keep`, importable by name."""
    module = types.ModuleType("toy_keras_module")
    module.double, module.keep = (lambda x: 2 * x), abs
    monkeypatch.setitem(sys.modules, "toy_keras_module", module)
    return module


def test_ours_in_place_then_keras_own_back(monkeypatch):
    module = toy_module(monkeypatch)
    keras_double = module.double
    swap = KerasSwap("Our double", "toy_keras_module", double=lambda x: [x, x])
    swap.apply()
    swap.apply()
    assert swap.applied and module.double(3) == [3, 3] and module.keep is abs
    assert swap.keras_own == {"double": keras_double}
    swap.undo()
    assert not swap.applied and module.double is keras_double
    swap.undo()
    assert module.double is keras_double


def test_another_backend_is_refused_and_nothing_changes(monkeypatch):
    other = next(name for name in ("jax", "torch") if name != keras.backend.backend())
    module = toy_module(monkeypatch)
    keras_double = module.double
    swap = KerasSwap("Our double", "toy_keras_module", other, double=lambda x: [x, x])
    with pytest.raises(RuntimeError, match=f"Our double is for the {other} backend; KERAS_BACKEND is"):
        swap.apply()
    assert not swap.applied and module.double is keras_double
