"""Loads batches of examples so that an undecodable image file cannot stop a stream.

The scan-time check (`image_check`) reads headers and ends, not pixels, so a
file whose compressed data is damaged can pass it and still fail to decode
(e.g. a JPEG with a stray marker in its entropy-coded data: TensorFlow raises
`InvalidArgumentError: jpeg::Uncompress failed`). `load_batches` loads each
batch at once, as a plain pipeline does (one parallel map fused with the
batch), and only a batch in which a row fails is loaded again, row by row:
each failed row gets a stand-in from `replace`, and the batch keeps its
place, its rows and their order. `gray_images` is the usual stand-in: a
uniform gray image per failed file, and one `UndecodableImageWarning` naming
the file (once per file and process).

Example:

>>> import tensorflow as tf
>>> paths = tf.data.Dataset.from_tensor_slices([["/no/such/file.jpg"]])
>>> def load(path):
...     image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
...     return tf.image.resize(image, [2, 2])
>>> def replace(paths):
...     return gray_images(paths, 2)
>>> images = next(iter(load_batches(paths, load, replace)))  # warns, naming the file
>>> images.shape.as_list(), float(images[0, 0, 0, 0])
([1, 2, 2, 3], 128.0)
"""

import functools
import warnings

import tensorflow as tf

GRAY = 128.0
# Batches loaded at once: the next one starts while the last rows of one load.
_BATCHES_IN_FLIGHT = 2
_warned_paths = set()


class UndecodableImageWarning(UserWarning):
    """An image file failed to decode and was replaced by a gray image."""


def _warn_once_each(paths):
    for path in paths.numpy():
        path = path.decode("utf-8", "replace")
        if path not in _warned_paths:
            _warned_paths.add(path)
            warnings.warn(
                f"Cannot read or decode the image file {path}: wherever it is "
                "read, a uniform gray image takes its place (with its label). "
                "Remove or replace the file.",
                UndecodableImageWarning,
            )


def gray_images(paths, image_size):
    """Uniform gray float32 images `[len(paths), image_size, image_size, 3]`.

    Warns, once per file and process, that each of `paths` could not be
    decoded.
    """
    # A partial, not the function: TensorFlow attaches each py_function's
    # wrapper to a plain function it is given (`ag_dnc_wrapper__`), and the
    # next wrapper copies that attribute, a chain that keeps every wrapper
    # ever made alive.
    warned = tf.py_function(functools.partial(_warn_once_each), [paths], [])
    with tf.control_dependencies([warned]):
        return tf.fill([tf.size(paths), image_size, image_size, 3], GRAY)


def _with_stand_ins(batch, loaded_rows, outputs, replace):
    """`outputs` of `loaded_rows`, with `replace`'s stand-ins for the other rows of `batch`."""
    rows = tf.shape(tf.nest.flatten(batch)[0])[0]
    loaded = tf.scatter_nd(loaded_rows[:, None], tf.ones_like(loaded_rows), [rows])
    failed = tf.cast(tf.where(loaded == 0)[:, 0], tf.int32)
    stand_ins = replace(*tf.nest.map_structure(lambda t: tf.gather(t, failed), batch))
    return tf.nest.map_structure(
        lambda kept, new: tf.dynamic_stitch([loaded_rows, failed], [kept, new]),
        outputs,
        stand_ins,
    )


def _row_by_row(batch, load, replace):
    """A one-element dataset: the batch's rows loaded one by one, stand-ins where loading failed."""
    rows = tf.shape(tf.nest.flatten(batch)[0])[0]
    some_loaded = (
        tf.data.Dataset.from_tensor_slices((tf.range(rows), batch))
        .map(
            lambda row, example: (row, load(*example)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .ignore_errors()
        .batch(tf.cast(rows, tf.int64))
        .map(lambda loaded_rows, outputs: _with_stand_ins(batch, loaded_rows, outputs, replace))
    )
    none_loaded = tf.data.Dataset.from_tensors(batch).map(replace)
    return some_loaded.concatenate(none_loaded).take(1)


def _loaded_batch(batch, load, replace):
    """A one-element dataset: the batch loaded at once, or row by row if a row fails."""
    rows = tf.shape(tf.nest.flatten(batch)[0])[0]
    static_rows = tf.nest.flatten(batch)[0].shape[:1]

    def complete(*outputs):
        return tf.shape(tf.nest.flatten(outputs)[0])[0] == rows

    def with_static_rows(*outputs):
        for output in tf.nest.flatten(outputs):
            output.set_shape(static_rows.concatenate(output.shape[1:]))
        # A tuple arrives as several arguments, a tensor as one.
        return outputs if len(outputs) > 1 else outputs[0]

    # Fused with the batch, a failing row fails the whole batch, which
    # `ignore_errors` drops; unfused, the rows after it would make a short
    # batch, which `complete` drops.
    at_once = (
        tf.data.Dataset.from_tensor_slices(batch)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(tf.cast(rows, tf.int64))
        .ignore_errors()
        .filter(complete)
    )
    return at_once.concatenate(_row_by_row(batch, load, replace)).take(1).map(with_static_rows)


def load_batches(batches, load, replace):
    """Maps every row of every batch with `load`, and the rows where it fails with `replace`.

    Args:
        batches: a dataset of batches of examples: each element a tensor, or
            a tuple of tensors, with one row per example.
        load: maps one example (a tensor, or the tuple's tensors as
            arguments) to its outputs: a tensor or a tuple of tensors; it may
            raise (e.g. a decode error).
        replace: maps the examples whose `load` raised (same arguments, those
            rows) to their stand-ins: `load`'s outputs, batched.

    Returns:
        A dataset of batched outputs, one per batch of `batches`, in order,
        each with as many rows as its batch, in the order of its rows; a
        batch without a failed row is exactly `batch(map(load))` of its rows.
    """
    loaded = batches.interleave(
        lambda *batch: _loaded_batch(batch, load, replace),
        cycle_length=_BATCHES_IN_FLIGHT,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    cardinality = batches.cardinality()
    if cardinality == tf.data.UNKNOWN_CARDINALITY:
        return loaded
    # Keras reads the number of batches from it (e.g. `model.predict`).
    return loaded.apply(tf.data.experimental.assert_cardinality(cardinality))
