"""Data-parallel fine-tuning on simulated CPU devices, against one device.

A framework fixes its devices when it starts, so each backend runs in
subprocesses (this file run as a script) with its own `KERAS_BACKEND`,
whatever backend the suite runs under, all started at once: TensorFlow in one
process with two logical CPUs; JAX as two processes (joined through
`KERAS_DISTRIBUTION_*`) of two host devices each, four devices in all; and
the torch app. The first process fine-tunes a tiny ColoredMNIST straight on
one device, copying the run folder after the first checkpoint (what a crash
there leaves); then the copy resumes data-parallel on every device. Its
records and final checkpoint must be the straight run's. JAX runs at rate
0.9 (its dropout masks do not depend on the sharding); TensorFlow at rate 0,
because its replicas draw masks of their own, not the rows of a one-device
mask; at rate 0.9 TensorFlow resumes a data-parallel run data-parallel.
Direct checks pin down each device's masks.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "apps", "finetune.py")
LOCAL_DEVICES = 2
JAX_PROCESSES = 2
DEVICES = {"jax": LOCAL_DEVICES * JAX_PROCESSES, "tensorflow": LOCAL_DEVICES}
IGNORED_KEYS = {"images_per_second"}
IGNORED_ARGS = {"output_dir", "distribution", "devices"}


def write_tiny_mnist(data_dir):
    """45 fake digits as MNIST's raw files: 15 per ColoredMNIST domain, so the
    out splits hold 3 images, a batch that does not split evenly."""
    raw = pathlib.Path(data_dir) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 30), ("t10k", 15)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 30, (count, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels):
            image[2 + 2 * label : 5 + 2 * label, 4:24] = 255
        for name, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(
                size.to_bytes(4, "big") for size in array.shape
            )
            (raw / f"{prefix}-{name}-ubyte").write_bytes(header + array.tobytes())


def tiny_config(data_dir, preset, rate, distribution):
    from keras_ldrop.training import FinetuneConfig

    return FinetuneConfig(
        dataset="colored_mnist", data_dir=str(data_dir), backbone=preset,
        test_envs=(2,), image_size=28, batch_size=2, steps=2, checkpoint_freq=1,
        lr=0.01, average_start=1, rate=rate, distribution=distribution,
    )


def comparable(records):
    kept = []
    for record in records:
        record = {k: v for k, v in record.items() if k not in IGNORED_KEYS}
        record["args"] = {
            k: v for k, v in record["args"].items() if k not in IGNORED_ARGS
        }
        kept.append(record)
    return kept


def read_records(folder):
    with open(os.path.join(folder, "results.jsonl")) as file:
        return [json.loads(line) for line in file]


def free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def workers(tmp_path_factory, tiny_preset_folder):
    """Starts the JAX processes, the TensorFlow one and the torch app at once."""
    root = tmp_path_factory.mktemp("distribution")
    write_tiny_mnist(root / "data")

    def start(command, **environment):
        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **environment)
        return subprocess.Popen(
            command, cwd=ROOT, env=environment, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def worker(backend):
        return [sys.executable, os.path.abspath(__file__), backend,
                str(root / "data"), tiny_preset_folder, str(root / backend)]

    devices = f"--xla_force_host_platform_device_count={LOCAL_DEVICES}"
    coordinator = f"localhost:{free_port()}"
    started = {
        f"jax{index}": start(
            worker("jax"), KERAS_BACKEND="jax", XLA_FLAGS=devices,
            KERAS_DISTRIBUTION_JOB_ADDRESSES=coordinator,
            KERAS_DISTRIBUTION_NUM_PROCESSES=str(JAX_PROCESSES),
            KERAS_DISTRIBUTION_PROCESS_ID=str(index),
        )
        for index in range(JAX_PROCESSES)
    }
    started["tensorflow"] = start(worker("tensorflow"), KERAS_BACKEND="tensorflow")
    started["torch"] = start(
        [sys.executable, APP, "--distribution=data_parallel",
         f"--output_dir={root / 'torch'}"],
        KERAS_BACKEND="torch",
    )
    yield root, started
    for process in started.values():
        if process.poll() is None:
            process.kill()


def finished(workers, name):
    """`(returncode, stdout, stderr)` of a worker, once it has ended; a failed
    JAX process stops its peers, which would wait for it."""
    _, started = workers
    process = started[name]
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.returncode and name.startswith("jax"):
            for other, peer in started.items():
                if other.startswith("jax"):
                    peer.kill()
    return process.returncode, stdout, stderr


def facts_of(workers, name):
    code, stdout, stderr = finished(workers, name)
    assert code == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def assert_resumed_run_is_the_straight_run(folder, devices, distributions):
    """The records and final checkpoint of `folder/resumed` are those of
    `folder/straight`; its two steps ran on `devices` (1 or all) under
    `distributions`."""
    straight = read_records(folder / "straight")
    resumed = read_records(folder / "resumed")
    assert [r["args"]["devices"] for r in resumed] == devices
    assert [r["args"]["distribution"] for r in resumed] == distributions
    expected, actual = comparable(straight), comparable(resumed)
    assert [r.pop("loss") for r in actual] == pytest.approx(
        [r.pop("loss") for r in expected], rel=1e-5
    )
    assert actual == expected
    with np.load(folder / "straight" / "checkpoint.npz") as one, np.load(
        folder / "resumed" / "checkpoint.npz"
    ) as two:
        arrays = [name for name in one.files if name.split("/")[-1].isdigit()]
        assert len(arrays) > 20 and sorted(arrays) == sorted(
            name for name in two.files if name.split("/")[-1].isdigit()
        )
        for name in arrays:
            np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-6,
                                       err_msg=name)
    assert (folder / "resumed" / "done").exists()


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_resumed_data_parallel_run_matches_the_one_device_run(workers, backend):
    names = [f"jax{i}" for i in range(JAX_PROCESSES)] if backend == "jax" else [backend]
    devices = DEVICES[backend]
    for name in names:
        facts = facts_of(workers, name)
        assert facts["lines"][0].startswith(
            f"Data-parallel on {backend} over {devices} devices"
        )
        assert facts["lines"][1].startswith("Resumed from step 1")
        assert f"a multiple of {devices}: change --batch_size" in facts["indivisible"]
    assert_resumed_run_is_the_straight_run(
        workers[0] / backend, [1, devices], ["none", "data_parallel"]
    )


def test_tensorflow_data_parallel_dropout_run_resumes_exactly(workers):
    facts = facts_of(workers, "tensorflow")
    assert facts["dropout_lines"][1].startswith("Resumed from step 1")
    devices = DEVICES["tensorflow"]
    assert_resumed_run_is_the_straight_run(
        workers[0] / "tensorflow" / "dropout", [devices, devices],
        ["data_parallel", "data_parallel"],
    )


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_every_variable_is_replicated_and_dropout_trains(workers, backend):
    facts = facts_of(workers, "jax0" if backend == "jax" else backend)["direct"]
    assert facts["devices_per_variable"] == [DEVICES[backend]]
    assert facts["average_variables"] == 2
    assert np.isfinite(facts["losses"]).all()
    assert facts["head_changed"] and facts["average_changed"]
    assert facts["dropout_state_advanced_by"] == 2


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_data_parallel_runs_leave_one_device_masks_unchanged(workers, backend):
    assert facts_of(workers, "jax0" if backend == "jax" else backend)[
        "one_device_mask_unchanged"
    ]


def test_tensorflow_replicas_draw_dropout_masks_of_their_own(workers):
    masks = facts_of(workers, "tensorflow")["direct"]["masks"]
    assert masks["replica_masks_differ"] == [True, True]
    assert masks["masks_of_two_steps_all_differ"]
    assert masks["first_replica_draws_first_rows_of_one_device_mask"]
    assert masks["state_advanced_by"] == [2, 2]
    values = masks["fit_update_values"]
    assert 1.0 in values and set(values) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize("process", range(JAX_PROCESSES))
def test_jax_devices_draw_their_rows_of_the_one_device_mask(workers, process):
    masks = facts_of(workers, f"jax{process}")["direct"]["masks"]
    assert masks["local_devices"] == LOCAL_DEVICES
    assert masks["device_masks_differ"]
    assert masks["device_masks_are_rows_of_one_device_mask"]


def test_torch_answers_with_one_line_naming_the_alternatives(workers):
    code, _, stderr = finished(workers, "torch")
    assert code == 1
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(
        "finetune: error: --distribution=data_parallel is not available on the "
        "torch backend"
    )
    for alternative in ("KERAS_BACKEND=jax", "KERAS_BACKEND=tensorflow",
                        "--launcher=multi_gpu"):
        assert alternative in line
    assert not (workers[0] / "torch" / "config.json").exists()


def test_distribution_is_checked_and_not_part_of_the_run_identity():
    from keras_ldrop.training import ConfigError, FinetuneConfig

    with pytest.raises(ConfigError, match="--distribution must be one of none, "
                       "data_parallel; received 'model_parallel'"):
        FinetuneConfig(distribution="model_parallel").resolve()
    one = FinetuneConfig().resolve()
    many = FinetuneConfig(distribution="data_parallel").resolve()
    assert many.distribution == "data_parallel"
    assert one == many and one.to_json() == many.to_json()
    assert "distribution" not in json.loads(many.to_json())


def _straight_run_copied_after_first_checkpoint(config, output):
    from keras_ldrop.training import train_and_evaluate

    def copy_after_first_checkpoint(line):
        if line.startswith("step 1/"):
            shutil.copytree(f"{output}/straight", f"{output}/copying")
            os.rename(f"{output}/copying", f"{output}/resumed")

    train_and_evaluate(config, f"{output}/straight", log=copy_after_first_checkpoint)


def _resume_data_parallel(straight, resumed, output):
    """Process 0 runs `straight` in `output/straight`, copied after the first
    checkpoint to `output/resumed`, which every process resumes as `resumed`.
    Returns the resumed run's log lines."""
    from keras_ldrop.training import train_and_evaluate

    if os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "0") == "0":
        _straight_run_copied_after_first_checkpoint(straight, output)
    _wait_for(f"{output}/resumed")
    lines = []
    train_and_evaluate(resumed, f"{output}/resumed", log=lines.append)
    return lines


def _wait_for(path, seconds=300):
    deadline = time.time() + seconds
    while not os.path.exists(path):
        if time.time() > deadline:
            raise TimeoutError(f"{path} did not appear within {seconds} s.")
        time.sleep(0.2)


def _values(variables):
    import keras

    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def _device_count(variable, backend):
    if backend == "jax":
        sharding = variable.value.sharding
        return len(sharding.device_set) if sharding.is_fully_replicated else -1
    import tensorflow as tf

    return len(tf.distribute.get_strategy().experimental_local_results(variable.value))


def _direct_checks(backend):
    """A tiny rate-0.9 model with our SGD fitted under the distribution."""
    import keras
    import tensorflow as tf

    from keras_ldrop.layers import LargeDropout
    from keras_ldrop.optimizers import SGD
    from keras_ldrop.training.distribution import RunDistribution

    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(8, 16)).astype("float32"), rng.integers(0, 2, 8))
    ).batch(4)
    distribution = RunDistribution("data_parallel", 4)
    with distribution.scope():
        inputs = keras.Input((16,))
        dropout = LargeDropout(0.9, seed=0)
        outputs = keras.layers.Dense(2, name="predictions")(dropout(inputs))
        model = keras.Model(inputs, outputs)
        model.compile(SGD(0.1, average_start=1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.optimizer.build(model.trainable_variables)
        variables = model.variables + model.optimizer.variables
        counts = sorted({_device_count(v, backend) for v in variables})
        head, averages = model.get_layer("predictions").kernel, model.optimizer.averages
        before = _values([head, dropout.seed_generator.state, *averages])
        history = model.fit(data, epochs=1, verbose=0)
        after = _values([head, dropout.seed_generator.state, *averages])
        facts = {
            "devices_per_variable": counts,
            "average_variables": len(averages),
            "losses": history.history["loss"],
            "head_changed": not np.allclose(before[0], after[0]),
            "dropout_state_advanced_by": int(after[1][1] - before[1][1]),
            "average_changed": all(
                not np.allclose(b, a) for b, a in zip(before[2:], after[2:])
            ),
        }
    masks = _tensorflow_masks if backend == "tensorflow" else _jax_masks
    facts["masks"] = masks(distribution)
    return facts


def _one_device_mask(rows):
    from keras_ldrop.layers import LargeDropout

    ones = np.ones((rows, 16), "float32")
    return np.asarray(LargeDropout(0.5, seed=3)(ones, training=True))


def _tensorflow_masks(distribution):
    """The masks each replica draws in two steps run as Keras' `fit` runs
    them, against a one-device draw of the same seed; and a `fit` step."""
    import tensorflow as tf

    from keras_ldrop.layers import LargeDropout

    with distribution.scope():
        strategy = tf.distribute.get_strategy()
        layer = LargeDropout(0.5, seed=3)
        ones = tf.ones((3, 16))

        def draw_mask():
            return layer(ones, training=True)

        step = tf.function(lambda: strategy.run(draw_mask))
        steps = [
            [mask.numpy() for mask in strategy.experimental_local_results(step())]
            for _ in range(2)
        ]
        state = layer.seed_generator.state.value
        states = strategy.experimental_local_results(state)
    masks = [mask.tobytes() for replicas in steps for mask in replicas]
    return {
        "replica_masks_differ": [
            bool((first != second).any()) for first, second in steps
        ],
        "masks_of_two_steps_all_differ": len(set(masks)) == len(masks),
        "first_replica_draws_first_rows_of_one_device_mask": bool(
            (steps[0][0] == _one_device_mask(6)[:3]).all()
        ),
        "state_advanced_by": [int(state[1]) for state in states],
        "fit_update_values": _fit_update_of_one_row_per_replica(distribution),
    }


def _fit_update_of_one_row_per_replica(distribution):
    """One `fit` step of `mean(Dense(dropout(ones)))` from a zero kernel with
    lr 1, one row per replica: each kernel entry is minus the mean of the
    rows' mask values (0 or 2), so -1 marks a unit kept by one replica only.
    Returns the distinct values of minus the kernel."""
    import keras
    import tensorflow as tf

    from keras_ldrop.layers import LargeDropout

    with distribution.scope():
        inputs = keras.Input((16,))
        kept = LargeDropout(0.5, seed=0)(inputs)
        head = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
        outputs = head(kept)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.SGD(1.0), loss=lambda _, output: output)
        rows = tf.data.Dataset.from_tensors((tf.ones((2, 16)), tf.zeros((2, 1))))
        model.fit(rows, epochs=1, verbose=0)
    return sorted({float(-value) for value in head.kernel.numpy().ravel()})


def _jax_masks(distribution):
    """The mask of a batch split across every device of every process, each
    local device's rows against a one-device draw of the same seed."""
    import jax
    import keras

    from keras_ldrop.layers import LargeDropout

    with distribution.scope():
        data_parallel = keras.distribution.distribution()
        layer = LargeDropout(0.5, seed=3)
        ones = np.ones((2 * len(distribution.devices), 16), "float32")
        layout = data_parallel.get_data_layout(ones.shape).backend_layout
        batch = jax.make_array_from_callback(
            ones.shape, layout, lambda index: ones[index]
        )

        @jax.jit
        def draw_mask(state, images):
            mask, _ = layer.stateless_call([], [state], images, training=True)
            return mask

        mask = draw_mask(layer.seed_generator.state.value, batch)
    one_device = _one_device_mask(len(ones))
    shards = mask.addressable_shards
    return {
        "local_devices": len(shards),
        "device_masks_differ": len({np.asarray(s.data).tobytes() for s in shards})
        == len(shards),
        "device_masks_are_rows_of_one_device_mask": all(
            (np.asarray(s.data) == one_device[s.index]).all() for s in shards
        ),
    }


def _worker(backend, data_dir, preset, output):
    """Process 0 runs straight and copies; every process resumes the copy."""
    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * LOCAL_DEVICES
        )
    else:
        import keras

        keras.distribution.initialize()
    from keras_ldrop.training import ConfigError
    from keras_ldrop.training.distribution import RunDistribution

    one_device_mask = _one_device_mask(6)
    rate = 0.9 if backend == "jax" else 0.0
    facts = {
        "lines": _resume_data_parallel(
            tiny_config(data_dir, preset, rate, "none"),
            tiny_config(data_dir, preset, rate, "data_parallel"), output,
        )
    }
    if backend == "tensorflow":
        dropout = tiny_config(data_dir, preset, 0.9, "data_parallel")
        facts["dropout_lines"] = _resume_data_parallel(
            dropout, dropout, f"{output}/dropout"
        )
    try:
        RunDistribution("data_parallel", 5)
    except ConfigError as error:
        facts["indivisible"] = str(error)
    facts["direct"] = _direct_checks(backend)
    facts["one_device_mask_unchanged"] = bool(
        (_one_device_mask(6) == one_device_mask).all()
    )
    print(json.dumps(facts))


if __name__ == "__main__":
    _worker(*sys.argv[1:])
