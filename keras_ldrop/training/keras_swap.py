"""Puts our functions in place of Keras' own, and Keras' own back.

The speed and memory levers (`cpu_convolution.py`, `torch_convolution.py`,
`torch_batch_normalization.py`, `functional_memory.py`) each replace a few
functions of a Keras module or class; this keeps Keras' own to call where
ours does not apply, and to put back.

Example:

>>> import sys, types
>>> from keras_ldrop.training.keras_swap import KerasSwap
>>> module = sys.modules["toy"] = types.ModuleType("toy")
>>> module.double = lambda x: 2 * x
>>> swap = KerasSwap("Our double", "toy", double=lambda x: x + x)
>>> swap.apply(); swap.applied, module.double(3), swap.keras_own["double"](3)
(True, 6, 6)
>>> swap.undo(); swap.applied
False
"""

import pkgutil

import keras


class KerasSwap:
    """Our functions in place of attributes of a Keras module or class.

    Args:
        what: names ours in the error for another backend.
        owner: the dotted name of the module or class, imported only when
            the swap is applied.
        backend: the Keras backend ours are for; None: any.
        **ours: the attributes to replace, by name.
    """

    def __init__(self, what, owner, backend=None, **ours):
        self._what = what
        self._owner = owner
        self._backend = backend
        self._ours = ours
        self.keras_own = {}

    @property
    def applied(self):
        return bool(self.keras_own)

    def apply(self):
        """Puts ours in place; idempotent.

        Raises:
            RuntimeError: the Keras backend is not the one ours are for.
        """
        if self._backend not in (None, keras.backend.backend()):
            raise RuntimeError(
                f"{self._what} is for the {self._backend} backend; "
                f"KERAS_BACKEND is {keras.backend.backend()!r}."
            )
        owner = pkgutil.resolve_name(self._owner)
        if not self.keras_own:
            self.keras_own.update({name: getattr(owner, name) for name in self._ours})
        for name, function in self._ours.items():
            setattr(owner, name, function)

    def undo(self):
        """Puts Keras' own back."""
        if self.keras_own:
            owner = pkgutil.resolve_name(self._owner)
            for name in list(self.keras_own):
                setattr(owner, name, self.keras_own.pop(name))
