"""Our SGD's update on the torch backend as a few multi-tensor operations.

`keras_ldrop.optimizers.SGD` updates one variable at a time with Keras
operations (`update_step`); under JAX and TensorFlow the step is compiled
and that costs nothing, but the torch backend runs each of those operations
eagerly: about ten per variable, 1,600 for ResNet-50's 161 variables, each a
kernel launch on a GPU. `use_foreach_sgd_update()` gives our SGD the same
arithmetic, in the same order, one multi-tensor operation per stage over the
variables that share a learning-rate multiplier and a decay; the weights
equal the per-variable update's bit for bit. While it runs it holds one
weight-sized list of temporaries more than the per-variable update
(`torch.optim.SGD`'s foreach path does the same): after the backward pass,
below a step's peak except at a few images per step. On a 2-core CPU it
saved 0.02 s of a 0.19-0.20 s ResNet-50 step at 32 px and one image, nothing
measurable at 96 px and 48 images (BUILD_NOTES.md, "The torch backend's
per-step overhead"); GPUs were not measured.

Example:

>>> import keras
>>> from keras_ldrop.training import torch_sgd
>>> if keras.backend.backend() == "torch":
...     torch_sgd.use_foreach_sgd_update()
"""

import collections

import keras

from keras_ldrop.training.keras_swap import KerasSwap


def use_foreach_sgd_update():
    """Makes `SGD` update every variable with multi-tensor operations.

    Idempotent; `use_per_variable_sgd_update()` undoes it.

    Raises:
        RuntimeError: the Keras backend is not torch.
    """
    _SWAP.apply()


def use_per_variable_sgd_update():
    """Restores the per-variable `update_step` loop."""
    _SWAP.undo()


def uses_foreach_sgd_update():
    """Whether `use_foreach_sgd_update()` is in effect."""
    return _SWAP.applied


def _update_step(self, grads, trainable_variables, learning_rate):
    """`SGD.update_step`'s rule for every variable, a group of variables at a time."""
    import torch

    groups = collections.defaultdict(list)
    for gradient, variable in zip(grads, trainable_variables):
        index = self._get_variable_index(variable)
        key = (self._multiplier_of_variable[index], self._decay_of_variable[index], variable.dtype)
        groups[key].append((index, gradient, variable))
    with torch.no_grad():
        for (multiplier, decay, dtype), members in groups.items():
            rate = keras.ops.cast(learning_rate, dtype)
            if multiplier != 1.0:
                rate = keras.ops.multiply(rate, multiplier)
            _update_group(self, members, decay, rate)


def _update_group(optimizer, members, decay, rate):
    import torch

    indices = [index for index, _, _ in members]
    variables = [variable.value for _, _, variable in members]
    gradients = [gradient.to(variable.dtype) for (_, gradient, _), variable in zip(members, variables)]
    if decay != 0.0:
        gradients = _added(torch._foreach_mul(variables, decay), gradients)
    if optimizer.momentum != 0:
        buffers = [optimizer.momentums[index].value for index in indices]
        torch._foreach_mul_(buffers, optimizer.momentum)
        torch._foreach_add_(buffers, gradients)
        if optimizer.nesterov:
            gradients = _added(torch._foreach_mul(buffers, optimizer.momentum), gradients)
        else:
            gradients = buffers
    torch._foreach_sub_(variables, torch._foreach_mul(gradients, rate))
    if optimizer.averages:
        averages = [optimizer.averages[index].value for index in indices]
        completed = keras.ops.cast(optimizer.iterations + 1, variables[0].dtype)
        count = keras.ops.maximum(completed - (optimizer.average_start - 1), 1.0)
        torch._foreach_add_(averages, torch._foreach_div(torch._foreach_sub(variables, averages), count))


def _added(new_tensors, terms):
    """`new_tensors` plus `terms`, in place: no other list of temporaries (a + b is b + a, bit for bit)."""
    import torch

    torch._foreach_add_(new_tensors, terms)
    return new_tensors


_SWAP = KerasSwap(
    "The foreach SGD update", "keras_ldrop.optimizers:SGD", "torch", _backend_update_step=_update_step
)
