"""Atomic checkpoints of a whole training run, so a killed run resumes exactly.

A checkpoint is one `.npz` file: every model variable (weights, BatchNorm
statistics, the dropout generator's state), every optimizer variable (step
count, momentum buffers, the weight average), arrays of run state (the
trajectory ensemble's summed logits) and a JSON document (step, records, best
model). It is written to a temporary file and renamed over the previous one,
so a kill at any moment leaves either the old or the new checkpoint.

Example:

>>> import keras, tempfile, os
>>> from keras_ldrop.training.checkpoint import save_checkpoint, load_checkpoint
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> path = os.path.join(tempfile.mkdtemp(), "checkpoint.npz")
>>> save_checkpoint(path, model.variables, [], {}, {"step": 3})
>>> load_checkpoint(path, model.variables, [])[1]
{'step': 3}
"""

import contextlib
import io
import json
import os

import keras
import numpy as np


class CheckpointMismatchError(ValueError):
    """The checkpoint was written by a different model or optimizer."""


def save_checkpoint(path, model_variables, optimizer_variables, arrays, meta):
    """Writes the run's state to `path` atomically.

    Args:
        path: the checkpoint file (`.npz`).
        model_variables: the model's variables, in a fixed order.
        optimizer_variables: the optimizer's variables, in a fixed order.
        arrays: a dict of extra numpy arrays (e.g. ensemble logit sums).
        meta: a JSON-serializable dict (step, records, ...).
    """
    payload = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    for prefix, variables in (
        ("model", model_variables),
        ("optimizer", optimizer_variables),
    ):
        payload[f"{prefix}/paths"] = np.array([v.path for v in variables] or [""])
        for index, variable in enumerate(variables):
            payload[f"{prefix}/{index}"] = keras.ops.convert_to_numpy(variable)
    for name, array in arrays.items():
        payload[f"array/{name}"] = np.asarray(array)
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    write_atomically(path, buffer.getvalue())


def write_atomically(path, data):
    """Writes `data` (bytes) to `path` through a synced temporary file and a rename,
    so a kill at any moment leaves either the old file or the new one.
    A failed write (disk full) removes its temporary file and raises."""
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError:
        remove_quietly(temporary)
        raise


def remove_quietly(path):
    """Removes the file `path` if it can; a failed write's leftover, say."""
    with contextlib.suppress(OSError):
        os.remove(path)


def load_checkpoint(path, model_variables, optimizer_variables):
    """Restores variables from `path`; returns `(arrays, meta)`.

    Raises:
        CheckpointMismatchError: the variables' number or shapes differ from
            the checkpoint's (it belongs to another model or settings).
    """
    with np.load(path) as stored:
        for prefix, variables in (
            ("model", model_variables),
            ("optimizer", optimizer_variables),
        ):
            _restore(stored, prefix, variables, path)
        arrays = {
            key[len("array/"):]: stored[key]
            for key in stored.files
            if key.startswith("array/")
        }
        meta = json.loads(stored["meta"].tobytes().decode())
    return arrays, meta


def _restore(stored, prefix, variables, path):
    paths = [p for p in stored[f"{prefix}/paths"].tolist() if p]
    if len(paths) != len(variables):
        raise CheckpointMismatchError(
            f"Checkpoint {path} holds {len(paths)} {prefix} variables, this run "
            f"has {len(variables)}: it was written by another model or other "
            "settings. Use a new output folder."
        )
    # Variables are matched by position and shape: automatic names such as
    # `seed_generator_2` differ between processes for the same model.
    for index, (variable, stored_path) in enumerate(zip(variables, paths)):
        value = stored[f"{prefix}/{index}"]
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointMismatchError(
                f"Checkpoint {path}: {prefix} variable #{index} "
                f"({stored_path}) has shape {value.shape}, this run's "
                f"({variable.path}) has {tuple(variable.shape)}. Use a new "
                "output folder."
            )
        variable.assign(value)
