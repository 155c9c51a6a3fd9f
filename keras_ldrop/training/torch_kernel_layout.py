"""Convolution kernels stored in the memory order torch's convolutions read.

Keras keeps a 2D convolution kernel as a contiguous (height, width, in, out)
tensor. oneDNN takes it channels-last, (out, height, width, in) in memory, so
every convolution call copied every kernel into that order (Keras' torch
`conv` and ours in `torch_convolution.py` alike), and autograd copied every
kernel gradient back into Keras' order: 62 of the 102 ms a ResNet-50 step
(96 px, 48 images) spent copying tensors on a 2-core CPU.
`use_channels_last_kernels()` stores each four-dimensional floating-point
variable created afterwards (kernels, and the optimizer's momentums and
averages that mirror them) with that memory order under Keras' shape: a
permuted view, which `conv` passes on without a copy, whose gradient autograd
keeps as it comes, and which SGD's element-wise update reads in step with its
momentum. Shapes, values and every computation are the same: fine-tuning gives
the same weights bit for bit. On a 2-core CPU a ResNet-50 step (96 px, 48
images) went from 1.451 to 1.388 s (BUILD_NOTES.md, "Kernels stored
channels-last").

Variables made before the call keep Keras' layout; a torch parameter that a
variable wraps (`TorchModuleWrapper`) is kept as it is.

Example:

>>> import keras
>>> from keras_ldrop.training import torch_kernel_layout
>>> if keras.backend.backend() == "torch":
...     torch_kernel_layout.use_channels_last_kernels()
...     kernel = keras.Variable(keras.ops.zeros((3, 3, 4, 8)))
...     assert tuple(kernel.shape) == (3, 3, 4, 8)
...     assert kernel.value.stride() == (12, 4, 1, 36)  # (8, 3, 3, 4) in memory
...     torch_kernel_layout.use_keras_kernel_layout()
"""

from keras_ldrop.training.keras_swap import KerasSwap


def use_channels_last_kernels():
    """Stores the four-dimensional variables created from now on channels-last.

    Idempotent; `use_keras_kernel_layout()` undoes it for later variables.

    Raises:
        RuntimeError: the Keras backend is not torch.
    """
    _SWAP.apply()


def use_keras_kernel_layout():
    """New variables are stored as Keras stores them (contiguous)."""
    _SWAP.undo()


def uses_channels_last_kernels():
    """Whether `use_channels_last_kernels()` is in effect."""
    return _SWAP.applied


def _initialize(self, value):
    import torch

    _SWAP.keras_own["_initialize"](self, value)
    parameter = self._value
    if (
        isinstance(value, torch.nn.Parameter)
        or parameter.ndim != 4
        or not parameter.is_floating_point()
    ):
        return
    stored = parameter.detach().permute(3, 0, 1, 2).contiguous().permute(1, 2, 3, 0)
    self._value = torch.nn.Parameter(stored, requires_grad=parameter.requires_grad)


_SWAP = KerasSwap(
    "Channels-last kernel storage",
    "keras.src.backend.torch.core:Variable",
    "torch",
    _initialize=_initialize,
)
