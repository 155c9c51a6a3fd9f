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

Under `mixed_bfloat16` (or `mixed_float16`) Keras' `BatchNormalization.call`
casts its inputs to float32 and its outputs back: two more passes over the
activations each way, and float32 copies kept for the backward pass. Where the
statistics are fixed, ours hands the lower-precision inputs to the same
kernel with float32 statistics, scale and offset, as `torch.autocast` runs a
BatchNorm: it computes in float32 and rounds once, to the layer's dtype. A
ResNet-50 step (96 px, 48 images, bfloat16, AVX512-BF16 CPU) went from
1.01-1.20 to 0.94-0.95 s and its peak memory from 3.2 to 2.5-2.7 GB
(BUILD_NOTES.md, "The machine is now an AVX-512/BF16 AMD EPYC").

Example:

>>> import keras
>>> from keras_ldrop.training import torch_batch_normalization
>>> if keras.backend.backend() == "torch":
...     torch_batch_normalization.use_fused_batch_normalization()
"""

import keras

from keras_ldrop.training.keras_swap import KerasSwap


def use_fused_batch_normalization():
    """Makes Keras' torch BatchNorm one kernel, in the inputs' dtype, where the statistics are fixed.

    Idempotent; `use_keras_batch_normalization()` undoes it.

    Raises:
        RuntimeError: the Keras backend is not torch.
    """
    _SWAP.apply()
    _LAYER_SWAP.apply()


def use_keras_batch_normalization():
    """Restores Keras' own torch `batch_normalization` and `BatchNormalization.call`."""
    _SWAP.undo()
    _LAYER_SWAP.undo()


def uses_fused_batch_normalization():
    """Whether `use_fused_batch_normalization()` is in effect."""
    return _SWAP.applied and _LAYER_SWAP.applied


def _batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    from keras.src.backend.torch.core import convert_to_tensor

    x, mean, variance = (convert_to_tensor(value) for value in (x, mean, variance))
    if (
        not _one_kernel_fits(x, axis)
        or mean.requires_grad
        or variance.requires_grad
        or mean.ndim != 1
        or variance.ndim != 1
    ):
        return _SWAP.keras_own["batch_normalization"](
            x, mean, variance, axis, offset, scale, epsilon
        )
    return _fixed_statistics(
        x,
        mean,
        variance,
        None if offset is None else convert_to_tensor(offset),
        None if scale is None else convert_to_tensor(scale),
        epsilon,
    )


def _batch_normalization_call(self, inputs, training=None, mask=None):
    """`BatchNormalization.call`: bfloat16/float16 inputs with fixed statistics stay in their dtype."""
    from keras.src.backend.torch.core import convert_to_tensor

    x = convert_to_tensor(inputs)
    dtype = keras.backend.standardize_dtype(x.dtype)
    if (
        dtype not in ("bfloat16", "float16")
        or dtype != self.compute_dtype
        or (training and self.trainable)
        or mask is not None
        or not _one_kernel_fits(x, self.axis)
    ):
        return _LAYER_SWAP.keras_own["call"](self, inputs, training=training, mask=mask)
    return _fixed_statistics(
        x,
        convert_to_tensor(self.moving_mean),
        convert_to_tensor(self.moving_variance),
        convert_to_tensor(self.beta) if self.center else None,
        convert_to_tensor(self.gamma) if self.scale else None,
        self.epsilon,
    )


def _one_kernel_fits(x, axis):
    """Whether `x` is `(batch, channels)` or channels-last 4D, normalised over its last axis."""
    return x.ndim in (2, 4) and axis in (-1, x.ndim - 1)


def _fixed_statistics(x, mean, variance, offset, scale, epsilon):
    """`torch.nn.functional.batch_norm` in evaluation mode on a channels-last `x`, in `x`'s dtype."""
    import torch

    channels_first = x.permute(0, 3, 1, 2) if x.ndim == 4 else x
    outputs = torch.nn.functional.batch_norm(
        channels_first, mean, variance, weight=scale, bias=offset, training=False, eps=epsilon
    )
    return outputs.permute(0, 2, 3, 1) if x.ndim == 4 else outputs


_SWAP = KerasSwap(
    "The fused batch normalization",
    "keras.src.backend.torch.nn",
    "torch",
    batch_normalization=_batch_normalization,
)
_LAYER_SWAP = KerasSwap(
    "The fused batch normalization",
    "keras.src.layers.normalization.batch_normalization:BatchNormalization",
    "torch",
    call=_batch_normalization_call,
)
