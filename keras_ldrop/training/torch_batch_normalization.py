"""Keras' torch batch normalization with fixed statistics, as one PyTorch kernel.

Fine-tuning with frozen BatchNorm (the paper's `freeze_bn`) normalises with
the moving statistics. Keras 3.15's torch `batch_normalization` writes that as
three tensor operations (subtract, multiply, add), each a pass over the
activations forward and more backward. `use_fused_batch_normalization()`
hands the same arithmetic to `torch.nn.functional.batch_norm` in evaluation
mode, one kernel each way, as plain PyTorch runs a frozen BatchNorm: an
EfficientNet-Lite0 step (96 px, 64 images, 2 threads) went from 0.68-0.69 to
0.60-0.61 s and its peak memory from 3.0 to 2.7 GB; a ResNet-50 step (112 px,
48 images) from 2.92-3.00 to 2.78-2.91 s (BUILD_NOTES.md, "The machine is now
an AVX2 AMD EPYC"). It applies where the statistics are fixed (they carry no
gradient), to 2D `(batch, channels)` and 4D channels-last inputs normalised
over their last axis; elsewhere (a BatchNorm in training mode, whose batch
statistics carry gradients) Keras' own runs. The values differ from Keras' by
float rounding (the scale and shift are folded first).

Example:

>>> import keras
>>> from keras_ldrop.training import torch_batch_normalization
>>> if keras.backend.backend() == "torch":
...     torch_batch_normalization.use_fused_batch_normalization()
"""

from keras_ldrop.training.keras_swap import KerasSwap


def use_fused_batch_normalization():
    """Makes Keras' torch `batch_normalization` one kernel where the statistics are fixed.

    Idempotent; `use_keras_batch_normalization()` undoes it.

    Raises:
        RuntimeError: the Keras backend is not torch.
    """
    _SWAP.apply()


def use_keras_batch_normalization():
    """Restores Keras' own torch `batch_normalization`."""
    _SWAP.undo()


def uses_fused_batch_normalization():
    """Whether `use_fused_batch_normalization()` is in effect."""
    return _SWAP.applied


def _batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    import torch
    from keras.src.backend.torch.core import convert_to_tensor

    x, mean, variance = (convert_to_tensor(value) for value in (x, mean, variance))
    if (
        x.ndim not in (2, 4)
        or axis not in (-1, x.ndim - 1)
        or mean.requires_grad
        or variance.requires_grad
        or mean.ndim != 1
        or variance.ndim != 1
    ):
        return _SWAP.keras_own["batch_normalization"](
            x, mean, variance, axis, offset, scale, epsilon
        )
    channels_first = x.permute(0, 3, 1, 2) if x.ndim == 4 else x
    outputs = torch.nn.functional.batch_norm(
        channels_first,
        mean,
        variance,
        weight=None if scale is None else convert_to_tensor(scale),
        bias=None if offset is None else convert_to_tensor(offset),
        training=False,
        eps=epsilon,
    )
    return outputs.permute(0, 2, 3, 1) if x.ndim == 4 else outputs


_SWAP = KerasSwap(
    "The fused batch normalization",
    "keras.src.backend.torch.nn",
    "torch",
    batch_normalization=_batch_normalization,
)
