"""Tests for keras_ldrop.optimizers: SGD against torch.optim.SGD, step_decay."""

import re

import keras
import numpy as np
import pytest
import torch

from keras_ldrop import optimizers

STEPS = 60
BATCH = 8
MILESTONE = 30
LEARNING_RATE = 0.02
HEAD_FACTOR = 10.0
WEIGHT_DECAY = 0.01
NUM_FEATURES, NUM_HIDDEN, NUM_CLASSES = 5, 8, 3


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, NUM_FEATURES)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=STEPS * BATCH).astype("int32")
    return x, y


def _initial_weights():
    rng = np.random.default_rng(1)
    return [
        rng.normal(scale=0.5, size=(NUM_FEATURES, NUM_HIDDEN)).astype("float32"),
        rng.normal(scale=0.1, size=(NUM_HIDDEN,)).astype("float32"),
        rng.normal(scale=0.5, size=(NUM_HIDDEN, NUM_CLASSES)).astype("float32"),
        rng.normal(scale=0.1, size=(NUM_CLASSES,)).astype("float32"),
    ]


def _keras_model(optimizer):
    inputs = keras.Input((NUM_FEATURES,))
    hidden = keras.layers.Dense(NUM_HIDDEN, activation="tanh", name="hidden")(inputs)
    outputs = keras.layers.Dense(NUM_CLASSES, name="predictions")(hidden)
    model = keras.Model(inputs, outputs)
    model.set_weights(_initial_weights())
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _fit(model, first_step, last_step):
    x, y = _data()
    window = slice(first_step * BATCH, last_step * BATCH)
    model.fit(x[window], y[window], batch_size=BATCH, shuffle=False, verbose=0)


def _train_keras(optimizer):
    model = _keras_model(optimizer)
    _fit(model, 0, STEPS)
    return model.get_weights()


def _train_torch(momentum, nesterov, head_factor):
    """The reference: two parameter groups (head lr x head_factor), MultiStepLR."""
    kernel, bias, head_kernel, head_bias = (torch.tensor(w) for w in _initial_weights())
    hidden = torch.nn.Linear(NUM_FEATURES, NUM_HIDDEN)
    head = torch.nn.Linear(NUM_HIDDEN, NUM_CLASSES)
    with torch.no_grad():
        hidden.weight.copy_(kernel.T)
        hidden.bias.copy_(bias)
        head.weight.copy_(head_kernel.T)
        head.bias.copy_(head_bias)
    optimizer = torch.optim.SGD(
        [
            {"params": hidden.parameters(), "lr": LEARNING_RATE},
            {"params": head.parameters(), "lr": LEARNING_RATE * head_factor},
        ],
        lr=LEARNING_RATE,
        momentum=momentum,
        weight_decay=WEIGHT_DECAY,
        nesterov=nesterov,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=[MILESTONE], gamma=0.1
    )
    x, y = _data()
    for step in range(STEPS):
        window = slice(step * BATCH, (step + 1) * BATCH)
        logits = head(torch.tanh(hidden(torch.tensor(x[window]))))
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y[window]).long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return [
        t.detach().numpy()
        for t in (hidden.weight.T, hidden.bias, head.weight.T, head.bias)
    ]


def _our_sgd(momentum, nesterov, head_factor=HEAD_FACTOR):
    return optimizers.SGD(
        optimizers.step_decay(LEARNING_RATE, milestones=[MILESTONE]),
        momentum=momentum,
        weight_decay=WEIGHT_DECAY,
        nesterov=nesterov,
        lr_multipliers={"predictions": head_factor},
    )


@pytest.mark.parametrize(
    "momentum, nesterov", [(0.9, False), (0.9, True), (0.0, False)]
)
def test_sgd_matches_torch_sgd_with_head_factor_and_lr_drop(momentum, nesterov):
    ours = _train_keras(_our_sgd(momentum, nesterov))
    reference = _train_torch(momentum, nesterov, HEAD_FACTOR)
    for initial, got, expected in zip(_initial_weights(), ours, reference):
        assert np.abs(expected - initial).max() > 1e-3
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_keras_sgd_with_weight_decay_does_not_match_torch_sgd():
    keras_sgd = keras.optimizers.SGD(
        optimizers.step_decay(LEARNING_RATE, milestones=[MILESTONE]),
        momentum=0.9,
        weight_decay=WEIGHT_DECAY,
    )
    theirs = _train_keras(keras_sgd)
    reference = _train_torch(0.9, False, head_factor=1.0)
    largest_gap = max(np.abs(a - b).max() for a, b in zip(theirs, reference))
    assert largest_gap > 1e-3


def _nested_model():
    """Variables at paths block/dense/*, wrapper/dense_head/*, dense/*."""

    class Wrapper(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = keras.layers.Dense(2, name="dense_head")

        def build(self, input_shape):
            self.inner.build(input_shape)

        def call(self, inputs):
            return self.inner(inputs)

    inputs = keras.Input((3,))
    block = keras.Sequential([keras.layers.Dense(3, name="dense")], name="block")
    wrapped = Wrapper(name="wrapper")(block(inputs))
    outputs = keras.layers.Dense(2, name="dense_1")(wrapped)
    return keras.Model(inputs, outputs)


def _apply_unit_gradients(optimizer, variables):
    before = [keras.ops.convert_to_numpy(v) for v in variables]
    optimizer.apply_gradients([(keras.ops.ones(v.shape), v) for v in variables])
    return {
        v.path: keras.ops.convert_to_numpy(v) - b for v, b in zip(variables, before)
    }


def test_lr_multipliers_apply_to_every_variable_under_a_whole_layer_name():
    model = _nested_model()
    optimizer = optimizers.SGD(
        1.0, momentum=0.0, lr_multipliers={"block": 2.0, "dense_head": 0.5}
    )
    steps = _apply_unit_gradients(optimizer, model.trainable_variables)
    expected = {
        "block/dense/kernel": -2.0,
        "block/dense/bias": -2.0,
        "wrapper/dense_head/kernel": -0.5,
        "wrapper/dense_head/bias": -0.5,
        "dense_1/kernel": -1.0,
        "dense_1/bias": -1.0,
    }
    assert sorted(steps) == sorted(expected)
    for path, step in steps.items():
        np.testing.assert_allclose(step, expected[path], rtol=1e-6, err_msg=path)


@pytest.mark.parametrize("key", ["head", "dense_hea", "kernel"])
def test_lr_multiplier_key_matching_no_whole_layer_name_raises_at_build(key):
    model = _nested_model()
    optimizer = optimizers.SGD(0.1, lr_multipliers={key: 10.0})
    with pytest.raises(ValueError, match=re.escape(repr(key))) as error:
        optimizer.build(model.trainable_variables)
    for layer_name in ("block", "dense_head", "dense_1"):
        assert repr(layer_name) in str(error.value)


def test_lr_multiplier_keys_selecting_the_same_variable_raise():
    model = _nested_model()
    optimizer = optimizers.SGD(0.1, lr_multipliers={"wrapper": 2.0, "dense_head": 3.0})
    with pytest.raises(ValueError, match="wrapper/dense_head/kernel"):
        optimizer.build(model.trainable_variables)


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"learning_rate": -0.1}, "learning_rate=-0.1"),
        ({"learning_rate": "fast"}, "learning_rate='fast'"),
        ({"learning_rate": 0.1, "momentum": -0.5}, "momentum=-0.5"),
        ({"learning_rate": 0.1, "momentum": 1.5}, "momentum=1.5"),
        ({"learning_rate": 0.1, "weight_decay": -1e-4}, "weight_decay=-0.0001"),
        ({"learning_rate": 0.1, "momentum": 0.0, "nesterov": True}, "momentum=0.0"),
        ({"learning_rate": 0.1, "lr_multipliers": {"predictions": -1.0}}, "-1.0"),
        ({"learning_rate": 0.1, "lr_multipliers": {3: 2.0}}, "key 3"),
        ({"learning_rate": 0.1, "lr_multipliers": {"a/b": 2.0}}, "key 'a/b'"),
        ({"learning_rate": 0.1, "lr_multipliers": [("a", 2.0)]}, "[('a', 2.0)]"),
    ],
)
def test_invalid_arguments_raise_naming_the_received_value(kwargs, received):
    with pytest.raises(ValueError, match=re.escape(received)):
        optimizers.SGD(**kwargs)


def test_base_optimizer_arguments_pass_through():
    variable = keras.Variable(np.zeros(3, "float32"))
    clipped = optimizers.SGD(1.0, momentum=0.0, clipvalue=0.5)
    clipped.apply_gradients([(keras.ops.full((3,), 4.0), variable)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), -0.5)

    accumulating = optimizers.SGD(1.0, momentum=0.0, gradient_accumulation_steps=2)
    other = keras.Variable(np.zeros(3, "float32"))
    accumulating.apply_gradients([(keras.ops.full((3,), 4.0), other)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(other), 0.0)
    accumulating.apply_gradients([(keras.ops.full((3,), 2.0), other)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(other), -3.0)


def test_weight_decay_honours_exclusions_and_leaves_the_base_decay_off():
    kernel = keras.Variable(np.full(2, 4.0, "float32"), name="kernel")
    bias = keras.Variable(np.full(2, 4.0, "float32"), name="bias")
    optimizer = optimizers.SGD(0.5, momentum=0.0, weight_decay=0.25)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    zeros = keras.ops.zeros((2,))
    optimizer.apply_gradients([(zeros, kernel), (zeros, bias)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), 4.0 - 0.5 * 1.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bias), 4.0)
    assert optimizer.coupled_weight_decay == 0.25
    assert optimizer.weight_decay is None


def test_step_decay_matches_torch_multistep_lr():
    milestones = [3, 7]
    schedule = optimizers.step_decay(0.5, milestones, factor=0.2)
    parameter = torch.nn.Parameter(torch.zeros(1))
    reference = torch.optim.SGD([parameter], lr=0.5)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(reference, milestones, gamma=0.2)
    for update in range(10):
        expected = reference.param_groups[0]["lr"]
        np.testing.assert_allclose(float(schedule(update)), expected, rtol=1e-6)
        reference.step()
        scheduler.step()
    assert float(schedule(9)) < float(schedule(0)) * 0.05


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"milestones": []}, "milestones=[]"),
        ({"milestones": [5, 3]}, "milestones=[5, 3]"),
        ({"milestones": [0]}, "milestones=[0]"),
        ({"milestones": [2.5]}, "milestones=[2.5]"),
        ({"milestones": [5], "factor": 0.0}, "factor=0.0"),
        ({"milestones": [5], "learning_rate": -1.0}, "learning_rate=-1.0"),
    ],
)
def test_step_decay_rejects_invalid_arguments(kwargs, received):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=re.escape(received)):
        optimizers.step_decay(**kwargs)


def test_get_config_round_trip():
    optimizer = optimizers.SGD(
        optimizers.step_decay(0.1, [10, 20]),
        momentum=0.8,
        weight_decay=5e-5,
        nesterov=True,
        lr_multipliers={"predictions": 10.0},
        clipnorm=1.0,
        gradient_accumulation_steps=2,
        name="paper_sgd",
    )
    config = optimizer.get_config()
    assert config["weight_decay"] == 5e-5
    assert config["lr_multipliers"] == {"predictions": 10.0}
    restored = optimizers.SGD.from_config(dict(config))
    assert restored.get_config() == config
    revived = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(revived, optimizers.SGD)
    assert revived.get_config() == config
    assert float(revived.learning_rate) == pytest.approx(0.1)


def test_saved_compiled_model_resumes_training_identically(tmp_path):
    saved_at = 20
    model = _keras_model(_our_sgd(0.9, nesterov=True))
    _fit(model, 0, saved_at)
    path = tmp_path / "model.keras"
    model.save(path)

    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, optimizers.SGD)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == saved_at
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for original, restored in zip(
        model.optimizer.variables, loaded.optimizer.variables
    ):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(restored), keras.ops.convert_to_numpy(original)
        )

    _fit(model, saved_at, STEPS)
    _fit(loaded, saved_at, STEPS)
    for expected, got in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    reference = _train_torch(0.9, True, HEAD_FACTOR)
    for expected, got in zip(reference, loaded.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_average_is_the_uniform_mean_of_the_weights_from_average_start():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="predictions")(inputs)
    model = keras.Model(inputs, outputs)
    optimizer = optimizers.SGD(0.1, momentum=0.9, weight_decay=0.01, average_start=3)
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.RandomState(0)
    kernels = []
    for _ in range(8):
        x, y = rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
        model.train_on_batch(x.astype("float32"), y.astype("float32"))
        kernels.append(keras.ops.convert_to_numpy(model.layers[-1].kernel).copy())
        if len(kernels) == 2:
            before_start = {
                v.path: keras.ops.convert_to_numpy(a).copy()
                for v, a in optimizer.average_pairs()
            }
    averages = {v.path: keras.ops.convert_to_numpy(a) for v, a in optimizer.average_pairs()}
    np.testing.assert_allclose(before_start["predictions/kernel"], kernels[1], rtol=1e-6)
    np.testing.assert_allclose(
        averages["predictions/kernel"], np.mean(kernels[2:], axis=0), rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(averages["predictions/kernel"], kernels[-1])
    assert optimizers.SGD.from_config(optimizer.get_config()).average_start == 3


def test_average_pairs_needs_average_start():
    with pytest.raises(ValueError, match="average_start=N"):
        optimizers.SGD(0.1).average_pairs()
    with pytest.raises(ValueError, match="average_start=0"):
        optimizers.SGD(0.1, average_start=0)
