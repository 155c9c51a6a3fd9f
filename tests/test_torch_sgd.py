"""Our SGD's multi-tensor update on the torch backend: the per-variable update's weights, bit for bit."""

import keras
import numpy as np
import pytest

from keras_ldrop import optimizers
from keras_ldrop.training import cpu_convolution, torch_sgd
from tests.test_optimizers import LEARNING_RATE, MILESTONE, STEPS, _fit, _initial_weights, _keras_model

torch_only = pytest.mark.skipif(keras.backend.backend() != "torch", reason="the torch backend's update")


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="other backends")
def test_other_backends_refuse_it():
    with pytest.raises(RuntimeError, match="for the torch backend; KERAS_BACKEND is"):
        torch_sgd.use_foreach_sgd_update()
    assert not torch_sgd.uses_foreach_sgd_update()


@torch_only
def test_fine_tuning_uses_it_and_the_per_variable_update_can_come_back():
    torch_sgd.use_per_variable_sgd_update()
    per_variable = optimizers.SGD._backend_update_step
    try:
        assert cpu_convolution.use_where_faster() is True
        torch_sgd.use_foreach_sgd_update()  # idempotent
        assert torch_sgd.uses_foreach_sgd_update()
        assert optimizers.SGD._backend_update_step is not per_variable
    finally:
        torch_sgd.use_per_variable_sgd_update()
    assert optimizers.SGD._backend_update_step is per_variable


def train(update, momentum, nesterov):
    """Trains the optimizer tests' two-layer model with every feature of our SGD; returns its weights,
    then its momentum buffers and weight averages."""
    update()
    try:
        optimizer = optimizers.SGD(
            optimizers.step_decay(LEARNING_RATE, milestones=[MILESTONE]),
            momentum=momentum,
            weight_decay=0.01,
            nesterov=nesterov,
            lr_multipliers={"predictions": 10.0},
            average_start=STEPS // 2,
        )
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        model = _keras_model(optimizer)
        _fit(model, 0, STEPS)
        return [np.asarray(v) for v in [*model.weights, *optimizer.momentums, *optimizer.averages]]
    finally:
        torch_sgd.use_per_variable_sgd_update()


@torch_only
@pytest.mark.parametrize("momentum, nesterov", [(0.9, False), (0.9, True), (0.0, False)])
def test_same_weights_momentums_and_averages_as_the_per_variable_update(momentum, nesterov, monkeypatch):
    groups = []
    update_group = torch_sgd._update_group
    monkeypatch.setattr(torch_sgd, "_update_group", lambda *args: groups.append(args) or update_group(*args))
    ours = train(torch_sgd.use_foreach_sgd_update, momentum, nesterov)
    assert len(groups) == 4 * STEPS  # {hidden, head (x10)} x {kernel, bias (no decay)}
    per_variable = train(torch_sgd.use_per_variable_sgd_update, momentum, nesterov)
    assert len(groups) == 4 * STEPS
    assert len(ours) == len(per_variable) == 4 * (1 + (momentum != 0) + 1)
    for mine, reference in zip(ours, per_variable):
        np.testing.assert_array_equal(mine, reference)
    for initial, final in zip(_initial_weights(), ours):
        assert not np.array_equal(initial, final)
