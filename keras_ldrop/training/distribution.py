"""Data-parallel fine-tuning: the one place that knows each backend's way.

`RunDistribution(name, global_batch_size)` says where a run computes. Build,
compile and fit inside its `scope()`, predict through `predictor(model)`, and
write files only where `is_main_process`, saving models inside
`main_process_only()`. With `"data_parallel"` every variable (weights, the
dropout generator's state, the optimizer's momentum buffers and weight
average) is replicated on every device, and each batch is split evenly
across them:

- JAX: `keras.distribution.DataParallel` over every device. When this
  process is one of several (`KERAS_DISTRIBUTION_JOB_ADDRESSES`,
  `KERAS_DISTRIBUTION_NUM_PROCESSES`, `KERAS_DISTRIBUTION_PROCESS_ID` or
  `JAX_COORDINATOR_ADDRESS` set), `keras.distribution.initialize()` first
  joins the others; the devices are then those of all processes, each
  process trains on its share of every batch, and only process 0 writes.
  The random bits do not depend on the sharding, so dropout masks are those
  of a one-device run.
- TensorFlow: `tf.distribute.MirroredStrategy` over the local GPUs (the
  logical CPUs when there is no GPU), one process. Every replica reads the
  same dropout generator state, so `draw_seeds_per_replica()` (installed
  for the whole process with the strategy) moves each replica's seed by its
  index: replica 0 draws the mask of the first rows of a one-device batch,
  the others masks of their own. The state itself advances as on one
  device, so checkpoints resume exactly.
- PyTorch: Keras 3.15 has no data-parallel distribution for it; a
  `ConfigError` names the alternatives.

Example:

```python
from keras_ldrop.training.distribution import RunDistribution

distribution = RunDistribution("data_parallel", global_batch_size=96)
with distribution.scope():
    model = build_model()
    model.compile(...)
    model.fit(...)
    logits = distribution.predictor(model).predict(dataset)
```
"""

import contextlib
import functools
import os

import keras
import numpy as np

from keras_ldrop.training.config import DISTRIBUTIONS, ConfigError

# Any of these makes a JAX run join the others through
# `keras.distribution.initialize()`: Keras' own, or JAX's coordinator address
# (JAX then reads the process count and index from SLURM, Open MPI, ...).
MULTI_PROCESS_VARIABLES = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
    "JAX_COORDINATOR_ADDRESS",
)


class RunDistribution:
    """The devices of a run, the scope to work in, and how to predict.

    Args:
        name: `"none"` (Keras' default device) or `"data_parallel"`.
        global_batch_size: images per update, split evenly across the devices.

    Attributes:
        name: as given.
        backend: the Keras backend.
        devices: the devices each batch is split across, those of every
            process (empty for `"none"`).
        is_main_process: whether this process writes the run's files (false
            only in processes 1, 2, ... of a multi-process JAX run).
        process_index, process_count: this process's index and the number of
            processes (0 and 1 but in a multi-process JAX run). Each process
            gives `fit` its own rows of every global batch (the training
            stream's `process_index`/`process_count`): Keras does not shard
            the stream again.

    Raises:
        ConfigError: an unknown `name`, a backend without data parallelism
            (PyTorch), or a global batch that does not split evenly.
    """

    def __init__(self, name, global_batch_size):
        if name not in DISTRIBUTIONS:
            raise ConfigError(
                f"--distribution must be one of {', '.join(DISTRIBUTIONS)}; "
                f"received {name!r}."
            )
        self.name = name
        self.backend = keras.backend.backend()
        self.global_batch_size = global_batch_size
        self.devices = ()
        self.is_main_process = True
        self.process_index, self.process_count = 0, 1
        self._strategy = None
        if name == "none":
            return
        if self.backend == "jax":
            self.devices, self._strategy, self.process_index, self.process_count = (
                _jax_data_parallel()
            )
            self.is_main_process = self.process_index == 0
        elif self.backend == "tensorflow":
            self.devices, self._strategy = _tensorflow_mirrored()
        else:
            raise ConfigError(
                f"--distribution=data_parallel is not available on the "
                f"{self.backend} backend: Keras 3.15 has no data-parallel "
                "distribution for it. Use KERAS_BACKEND=jax or "
                "KERAS_BACKEND=tensorflow to split each batch across several "
                "devices, or run one job per GPU with `apps/sweep.py launch "
                "--launcher=multi_gpu`."
            )
        if global_batch_size % len(self.devices):
            raise ConfigError(
                f"--distribution=data_parallel splits the global batch of "
                f"{global_batch_size} images (--batch_size x training domains) "
                f"across {len(self.devices)} {self.backend} devices; it must be "
                f"a multiple of {len(self.devices)}: change --batch_size."
            )

    def scope(self):
        """A context manager: variables created and computations run inside it
        are distributed (a no-op for `"none"`)."""
        if self._strategy is None:
            return contextlib.nullcontext()
        return self._strategy.scope()

    def main_process_only(self):
        """A context manager for work that only the main process does (saving
        a model). On JAX it leaves the distribution for the time: the objects
        that saving creates would otherwise be distributed, which needs every
        process to take part."""
        if self._strategy is None or self.backend != "jax":
            return contextlib.nullcontext()
        return _without_keras_distribution()

    def predictor(self, model, process_local=False):
        """An object whose `predict(dataset)` returns `model.predict`'s outputs.

        On JAX every batch is padded to a multiple of the devices (JAX splits
        a batch evenly or not at all) and split across the devices of every
        process; every process gets all the outputs.

        Args:
            model: the Keras model, built inside `scope()`.
            process_local: in a multi-process run, each process's dataset
                holds only its rows of every batch (`evaluation_pass` with
                `process_index`/`process_count`), a multiple of its devices;
                the outputs are every process's rows, batch after batch.
        """
        if self._strategy is not None and self.backend == "jax":
            return _ShardedPredictor(
                model, self._strategy, process_local and self.process_count > 1
            )
        return model

    def evaluation_batch_size(self, batch_size):
        """`batch_size`, rounded up to a multiple of the devices in a
        multi-process run (whose processes each take an even share).

        >>> RunDistribution("none", 96).evaluation_batch_size(64)
        64
        """
        if self.process_count == 1:
            return batch_size
        return -(-batch_size // len(self.devices)) * len(self.devices)

    def describe(self):
        """One line for the log, or `None` for `"none"`."""
        if not self.devices:
            return None
        line = (
            f"Data-parallel on {self.backend} over {len(self.devices)} devices "
            f"({', '.join(self.devices)}): "
            f"{self.global_batch_size // len(self.devices)} of "
            f"{self.global_batch_size} images each per update."
        )
        return line


@contextlib.contextmanager
def _without_keras_distribution():
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


def _jax_data_parallel():
    import jax

    joins = any(variable in os.environ for variable in MULTI_PROCESS_VARIABLES)
    if joins and not jax.distributed.is_initialized():
        keras.distribution.initialize()
    devices = tuple(keras.distribution.list_devices())
    # Each process's training stream holds only its rows of every global batch.
    strategy = keras.distribution.DataParallel(
        devices=list(devices), auto_shard_dataset=False
    )
    return devices, strategy, jax.process_index(), jax.process_count()


# One MirroredStrategy per set of devices and process: the collectives of a
# second strategy reuse the first one's instance keys, and its first
# all-reduce fails with "Shape mismatch in the collective instance".
_MIRRORED_STRATEGIES = {}


def _tensorflow_mirrored():
    import tensorflow as tf

    devices = tuple(
        device.name
        for device in tf.config.list_logical_devices("GPU")
        or tf.config.list_logical_devices("CPU")
    )
    if devices not in _MIRRORED_STRATEGIES:
        _MIRRORED_STRATEGIES[devices] = tf.distribute.MirroredStrategy(list(devices))
    draw_seeds_per_replica()
    return devices, _MIRRORED_STRATEGIES[devices]


# Successive replicas' seeds lie this far apart (Knuth's golden-ratio
# multiplier). It is coprime to 2**31 - 2, the modulus by which Keras reduces
# TensorFlow seeds, so no two replicas (of fewer than 2**31 - 2) share a seed.
REPLICA_SEED_STRIDE = 2654435761
TENSORFLOW_SEED_MODULUS = 2**31 - 2


def draw_seeds_per_replica():
    """Makes every `keras.random.SeedGenerator` hand each replica of a
    `tf.distribute` strategy a seed of its own (TensorFlow backend).

    Keras gives every replica the same generator state, hence the same
    dropout mask for each replica's share of the batch. From this call on,
    `SeedGenerator.next` adds `replica index x REPLICA_SEED_STRIDE` to the
    first entry of the seed it returns. Replica 0, and any computation
    outside a multi-replica strategy, keep Keras' seeds; the generator's
    state advances as before, so a restored checkpoint resumes exactly.
    Calling it again changes nothing.

    Example:

    ```python
    import tensorflow as tf
    from keras_ldrop.layers import LargeDropout

    # Two logical CPUs, set up before TensorFlow's first operation:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    draw_seeds_per_replica()
    with strategy.scope():
        layer = LargeDropout(0.9, seed=0)
    ones = tf.ones((4, 8))
    masks = strategy.run(tf.function(lambda: layer(ones, training=True)))
    first, second = strategy.experimental_local_results(masks)  # differ
    ```
    """
    generator = keras.random.SeedGenerator
    if getattr(generator.next, "folds_replica_id", False):
        return
    draw_shared_seed = generator.next

    @functools.wraps(draw_shared_seed)
    def next_seed_of_this_replica(self, ordered=True):
        return _fold_replica_id(draw_shared_seed(self, ordered))

    next_seed_of_this_replica.folds_replica_id = True
    generator.next = next_seed_of_this_replica


def _fold_replica_id(seed):
    """`seed` moved by this replica's index; unchanged for replica 0 and
    outside a strategy of several replicas."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return seed
    replica = tf.cast(context.replica_id_in_sync_group, "int64")
    offset = replica * REPLICA_SEED_STRIDE % TENSORFLOW_SEED_MODULUS
    return seed + tf.cast(tf.stack([offset, tf.zeros_like(offset)]), seed.dtype)


class _ShardedPredictor:
    """JAX inference with each batch split across every device of every process.

    Every process reads the whole dataset. Each batch is padded, by repeating
    its last image, to a multiple of the devices and to at least the first
    batch's size (one compiled function for a batched dataset); the padding's
    outputs are dropped and every process receives all the others. With
    `process_local`, each process reads only its rows of every (already
    padded) batch, and receives every process's outputs.
    """

    def __init__(self, model, data_parallel, process_local=False):
        import jax

        self.model = model
        self.data_parallel = data_parallel
        self.process_local = process_local
        self.device_count = data_parallel.device_mesh.devices.size

        def forward(trainable, non_trainable, images):
            outputs, _ = model.stateless_call(
                trainable, non_trainable, images, training=False
            )
            return outputs

        self._forward = jax.jit(forward)

    def predict(self, dataset, verbose=0):
        """Returns the model's outputs for every image of `dataset`.

        Args:
            dataset: batches of images, or of `(images, ...)` tuples.
            verbose: accepted for `model.predict`'s signature; unused.
        """
        import jax
        from jax.experimental import multihost_utils

        trainable = [v.value for v in self.model.trainable_variables]
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        batches, sizes = [], []
        padded_size = 0
        for element in dataset.as_numpy_iterator():
            images = element[0] if isinstance(element, tuple) else element
            if self.process_local:
                global_shape = (len(images) * jax.process_count(), *images.shape[1:])
                layout = self.data_parallel.get_data_layout(global_shape).backend_layout
                batch = jax.make_array_from_process_local_data(layout, images, global_shape)
                batches.append(self._forward(trainable, non_trainable, batch))
                sizes.append(global_shape[0])
                continue
            size = len(images)
            multiple = -(-size // self.device_count) * self.device_count
            padded_size = max(padded_size, multiple)
            padded = np.concatenate(
                [images, np.repeat(images[-1:], padded_size - size, axis=0)]
            )
            layout = self.data_parallel.get_data_layout(padded.shape).backend_layout
            batch = jax.make_array_from_callback(
                padded.shape, layout, lambda index, padded=padded: padded[index]
            )
            batches.append(self._forward(trainable, non_trainable, batch))
            sizes.append(size)
        gathered = multihost_utils.process_allgather(batches, tiled=True)
        return np.concatenate(
            [outputs[:size] for outputs, size in zip(gathered, sizes)]
        )
