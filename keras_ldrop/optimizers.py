"""SGD with the reference (PyTorch) semantics and a step learning-rate decay.

The paper fine-tunes with `torch.optim.SGD`: the L2 term is added to the
gradient before momentum (coupled weight decay), the momentum buffer
accumulates gradients, and the learning rate drops by 10x at fixed steps
(`MultiStepLR`). Keras' own `SGD` differs on both counts (its `weight_decay`
is decoupled and its velocity already holds the learning rate), so the
numbers of the paper need this optimizer.

Example:

```python
import keras
from keras_ldrop import optimizers

schedule = optimizers.step_decay(1e-3, milestones=[5000])
optimizer = optimizers.SGD(
    schedule, momentum=0.9, weight_decay=1e-4,
    lr_multipliers={"predictions": 10.0},
)
inputs = keras.Input((4,))
outputs = keras.layers.Dense(3, name="predictions")(inputs)
model = keras.Model(inputs, outputs)
model.compile(optimizer=optimizer, loss="mse")
```
"""

import difflib
import numbers

import keras

_MAX_LISTED_NAMES = 20


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _variable_path(variable):
    return getattr(variable, "path", None) or variable.name


def _layer_names_in_path(variable):
    """The layer-name components of a variable's path (all but the last)."""
    return _variable_path(variable).split("/")[:-1]


def _describe_names(names):
    names = sorted(names)
    listed = ", ".join(repr(name) for name in names[:_MAX_LISTED_NAMES])
    if len(names) > _MAX_LISTED_NAMES:
        listed += f", ... ({len(names) - _MAX_LISTED_NAMES} more)"
    return listed


def _validate_lr_multipliers(lr_multipliers):
    if lr_multipliers is None:
        return {}
    if not isinstance(lr_multipliers, dict):
        raise ValueError(
            "`lr_multipliers` must be a dict mapping layer names to "
            f"non-negative factors. Received: lr_multipliers={lr_multipliers!r}"
        )
    for key, factor in lr_multipliers.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ValueError(
                "The keys of `lr_multipliers` must be layer names (non-empty "
                f"strings without '/'). Received key {key!r} in "
                f"lr_multipliers={lr_multipliers!r}"
            )
        if not _is_real(factor) or factor < 0:
            raise ValueError(
                "The values of `lr_multipliers` must be non-negative numbers. "
                f"Received {key!r}: {factor!r}"
            )
    return {key: float(factor) for key, factor in lr_multipliers.items()}


@keras.saving.register_keras_serializable(package="keras_ldrop")
class SGD(keras.optimizers.Optimizer):
    """Stochastic gradient descent with `torch.optim.SGD` semantics.

    For each trainable variable `w` with gradient `g` (dampening 0):

    ```python
    g = g + weight_decay * w            # coupled L2, before momentum
    b = momentum * b + g                # momentum buffer of gradients
    g = g + momentum * b if nesterov else b
    w = w - learning_rate * multiplier * g
    ```

    The decay is not Keras' decoupled `weight_decay`: the base class's
    `weight_decay` stays `None`, the coefficient is `coupled_weight_decay`,
    and `exclude_from_weight_decay()` selects the variables it skips. A learning-rate schedule sees the number of updates done
    before the current one (see `step_decay`).

    Args:
        learning_rate: a non-negative float, a
            `keras.optimizers.schedules.LearningRateSchedule` or a callable
            that takes no argument and returns the learning rate.
        momentum: float in [0, 1]; 0 disables the momentum buffer.
        weight_decay: non-negative float, the coupled L2 coefficient.
        nesterov: whether to use Nesterov momentum (needs `momentum > 0`).
        lr_multipliers: optional dict `{layer_name: factor}` multiplying the
            learning rate of every variable whose `variable.path` contains
            that layer name as a whole component, e.g. `{"predictions": 10.0}`
            for a 10x head learning rate. Checked when the optimizer is built:
            a name that matches no variable, or two names that match the same
            variable, raise a `ValueError`. Key the layers that own the
            variables: the paths of a functional sub-model's variables (a
            backbone) hold only the names of the layers inside it, and a
            `Sequential`'s own name leaves them on a `.keras` reload.
        average_start: optional number of updates after which to keep a
            uniform running mean of every trainable variable (the paper's
            weight-averaging baseline, from update 300 on); see
            `average_pairs()`. Before that the "average" is the variable.
        **kwargs: the base optimizer arguments (`name`, `clipnorm`,
            `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`).
    """

    def __init__(
        self,
        learning_rate,
        momentum=0.9,
        weight_decay=0.0,
        nesterov=False,
        lr_multipliers=None,
        average_start=None,
        **kwargs,
    ):
        if _is_real(learning_rate):
            if learning_rate < 0:
                raise ValueError(
                    "`learning_rate` must be non-negative. Received: "
                    f"learning_rate={learning_rate}"
                )
            learning_rate = float(learning_rate)
        elif not callable(learning_rate):
            raise ValueError(
                "`learning_rate` must be a non-negative number, a "
                "LearningRateSchedule or a callable. Received: "
                f"learning_rate={learning_rate!r}"
            )
        if not _is_real(momentum) or not 0 <= momentum <= 1:
            raise ValueError(
                "`momentum` must be a number in [0, 1]. Received: "
                f"momentum={momentum!r}"
            )
        if weight_decay is None:
            weight_decay = 0.0
        if not _is_real(weight_decay) or weight_decay < 0:
            raise ValueError(
                "`weight_decay` must be a non-negative number. Received: "
                f"weight_decay={weight_decay!r}"
            )
        if nesterov and momentum == 0:
            raise ValueError(
                "`nesterov=True` needs a positive `momentum`. Received: "
                f"momentum={momentum}, nesterov={nesterov}"
            )
        if average_start is not None and (
            not isinstance(average_start, numbers.Integral)
            or isinstance(average_start, bool)
            or average_start < 1
        ):
            raise ValueError(
                "`average_start` must be None or a positive number of "
                f"updates. Received: average_start={average_start!r}"
            )
        lr_multipliers = _validate_lr_multipliers(lr_multipliers)
        super().__init__(learning_rate=learning_rate, weight_decay=None, **kwargs)
        self.momentum = float(momentum)
        self.coupled_weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        self.lr_multipliers = lr_multipliers
        self.average_start = None if average_start is None else int(average_start)

    def build(self, variables):
        """Creates the momentum buffers and resolves the per-variable factors.

        Args:
            variables: the trainable variables the optimizer will update.
        """
        if self.built:
            return
        super().build(variables)
        self._multiplier_of_variable = self._resolve_lr_multipliers(variables)
        self._decay_of_variable = [
            self.coupled_weight_decay if self._use_weight_decay(v) else 0.0
            for v in variables
        ]
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")
        self.averages = []
        if self.average_start is not None:
            self.averages = self.add_optimizer_variables(variables, "average")

    def average_pairs(self):
        """Returns `(variable, average)` pairs, one per trainable variable.

        Each `average` is the uniform mean of `variable` over the values it
        held after updates `average_start, average_start + 1, ...` (equal to
        the variable itself before `average_start` updates are done).

        Raises:
            ValueError: the optimizer was made without `average_start` or is
                not built yet.
        """
        if not getattr(self, "averages", None):
            raise ValueError(
                "This SGD keeps no weight average: create it with "
                "`average_start=N` and build it (compile and train) first."
            )
        return list(zip(self._trainable_variables, self.averages))

    def _resolve_lr_multipliers(self, variables):
        multipliers = []
        matched_keys = set()
        for variable in variables:
            names = _layer_names_in_path(variable)
            keys = [key for key in self.lr_multipliers if key in names]
            if len(keys) > 1:
                raise ValueError(
                    f"Variable {_variable_path(variable)!r} matches several keys of "
                    f"`lr_multipliers`: {keys}. Use keys that select disjoint "
                    "sets of variables."
                )
            matched_keys.update(keys)
            multipliers.append(self.lr_multipliers[keys[0]] if keys else 1.0)
        unmatched = [key for key in self.lr_multipliers if key not in matched_keys]
        if unmatched:
            available = {
                name for v in variables for name in _layer_names_in_path(v)
            }
            hints = {
                key: difflib.get_close_matches(key, available, n=3)
                for key in unmatched
            }
            hints = {key: close for key, close in hints.items() if close}
            raise ValueError(
                f"`lr_multipliers` keys {unmatched} match no trainable "
                "variable: a key must be a whole layer name in a variable's "
                "path. "
                + (f"Close matches: {hints}. " if hints else "")
                + "Layer names in the trainable variables' paths: "
                + _describe_names(available)
            )
        return multipliers

    def _apply_weight_decay(self, variables):
        """No decoupled decay: the coupled decay happens in `update_step`."""

    def update_step(self, gradient, variable, learning_rate):
        """Updates one variable (see the class docstring for the rule)."""
        index = self._get_variable_index(variable)
        learning_rate = keras.ops.cast(learning_rate, variable.dtype)
        multiplier = self._multiplier_of_variable[index]
        if multiplier != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, multiplier)
        gradient = keras.ops.cast(gradient, variable.dtype)
        decay = self._decay_of_variable[index]
        if decay != 0.0:
            gradient = keras.ops.add(gradient, keras.ops.multiply(variable, decay))
        if self.momentum != 0:
            buffer = self.momentums[index]
            new_buffer = keras.ops.add(
                keras.ops.multiply(buffer, self.momentum), gradient
            )
            self.assign(buffer, new_buffer)
            if self.nesterov:
                gradient = keras.ops.add(
                    gradient, keras.ops.multiply(new_buffer, self.momentum)
                )
            else:
                gradient = new_buffer
        self.assign_sub(variable, keras.ops.multiply(gradient, learning_rate))
        if self.averages:
            self._update_average(self.averages[index], variable)

    def _update_average(self, average, variable):
        completed = keras.ops.cast(self.iterations + 1, variable.dtype)
        count = keras.ops.maximum(completed - (self.average_start - 1), 1.0)
        self.assign(
            average,
            keras.ops.add(
                average,
                keras.ops.divide(keras.ops.subtract(variable, average), count),
            ),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.coupled_weight_decay,
                "nesterov": self.nesterov,
                "lr_multipliers": dict(self.lr_multipliers),
                "average_start": self.average_start,
            }
        )
        return config


def step_decay(learning_rate, milestones, factor=0.1):
    """A learning rate multiplied by `factor` at each milestone.

    The schedule of PyTorch's `MultiStepLR(optimizer, milestones, gamma=factor)`
    stepped after every update: updates `0 .. milestones[0] - 1` use
    `learning_rate`, the next ones `learning_rate * factor`, and so on. Keras
    calls a schedule with the number of updates already done, hence the
    boundaries `milestone - 1`.

    Args:
        learning_rate: the initial learning rate, a positive number.
        milestones: strictly increasing positive update counts.
        factor: the multiplier applied at each milestone, a positive number.

    Returns:
        A serializable `keras.optimizers.schedules.PiecewiseConstantDecay`.

    Example:

    >>> schedule = step_decay(1e-3, milestones=[5000])
    >>> [round(float(schedule(step)), 6) for step in (0, 4999, 5000)]
    [0.001, 0.001, 0.0001]
    """
    if not _is_real(learning_rate) or learning_rate <= 0:
        raise ValueError(
            "`learning_rate` must be a positive number. Received: "
            f"learning_rate={learning_rate!r}"
        )
    if not _is_real(factor) or factor <= 0:
        raise ValueError(
            f"`factor` must be a positive number. Received: factor={factor!r}"
        )
    milestones = list(milestones)
    is_int = [isinstance(m, numbers.Integral) and not isinstance(m, bool)
              for m in milestones]
    if (
        not milestones
        or not all(is_int)
        or milestones[0] < 1
        or any(b <= a for a, b in zip(milestones, milestones[1:]))
    ):
        raise ValueError(
            "`milestones` must be a non-empty, strictly increasing list of "
            "positive integers (use a float learning rate for no decay). "
            f"Received: milestones={milestones!r}"
        )
    values = [float(learning_rate)]
    for _ in milestones:
        values.append(values[-1] * factor)
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[int(m) - 1 for m in milestones], values=values
    )
