"""Load a saved keras_ldrop classifier and compute its logits on image files.

Files go through the evaluation transform of the data pipeline (decode,
resize to the model's square image size, no normalisation) in a `tf.data`
pipeline that decodes in parallel. Every file is first checked cheaply
(`check_image_file`); a file that still fails to decode is dropped by the
pipeline (`ignore_errors`) and reported, so one bad file never stops a run.

Example:

```python
from keras_ldrop.inference.classify import classify_files, load_classifier
model, card = load_classifier("runs/vlcs-0123456789/best.keras")
result = classify_files(model, ["cat.jpg", "dog.png"], card["image_size"])
result.logits.shape, result.skipped   # (2, num_classes), []
```
"""

import dataclasses
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf

from keras_ldrop.data.image_check import check_image_files
from keras_ldrop.data.pipelines import decode_resized
from keras_ldrop.inference.progress import Progress
from keras_ldrop.model_card import read_model_card, square_image_size
from keras_ldrop.training import cpu_convolution

DECODE_FAILURE = "could not be decoded"


def check_model_file(path):
    """Raises `FileNotFoundError` naming `path` when it is not a file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file {path} does not exist.")


def load_classifier(path):
    """Loads a `.keras` classifier saved by keras_ldrop; returns `(model, card)`.

    Args:
        path: a `.keras` file (e.g. `best.keras` of a run folder).

    Returns:
        The model and `read_model_card(model)`, whose `image_size` is an int.

    Raises:
        FileNotFoundError: `path` is not a file.
        ValueError: the file is not a loadable Keras model, or the model does
            not carry its class names or image size (`MissingModelCardError`).
    """
    check_model_file(path)
    try:
        model = keras.saving.load_model(path)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"Cannot load the model {path}: {error}") from None
    card = read_model_card(model)
    square_image_size(card, path)
    return model, card


def check_files(paths):
    """Splits `paths` into `(readable, skipped)`: paths and `[(path, reason)]`.

    Runs `check_image_file` on many files at once (it reads a few hundred
    bytes of each); both lists keep the order of `paths`.
    """
    reasons = check_image_files(paths)
    readable = [path for path, reason in zip(paths, reasons) if reason is None]
    skipped = [(path, reason) for path, reason in zip(paths, reasons) if reason]
    return readable, skipped


@dataclasses.dataclass(frozen=True)
class ClassifiedFiles:
    """The logits of the files that decoded, in input order.

    Attributes:
        positions: int array, the index in the input list of each row.
        logits: float32 `[len(positions), num_classes]`.
        skipped: `[(path, reason)]` of the files that did not decode.
    """

    positions: np.ndarray
    logits: np.ndarray
    skipped: list


def _decoded_files(paths, image_size, batch_size):
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), tf.constant(paths, tf.string))
    )
    dataset = dataset.map(
        lambda position, path: (
            position,
            decode_resized(tf.io.read_file(path), image_size),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE)


def classify_files(model, paths, image_size, batch_size=32, progress=False):
    """Runs `model` on image files, batch by batch; files that fail to decode are skipped.

    Args:
        model: a Keras model taking float32 RGB pixels in [0, 255].
        paths: image file paths.
        image_size: the side of the square images the model takes.
        batch_size: images per batch.
        progress: draw a progress bar on stderr (when it is a terminal).

    Returns:
        A `ClassifiedFiles`.

    The model runs with `cpu_convolution.use_where_faster()`, as fine-tuning does.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}.")
    paths = [os.fspath(path) for path in paths]
    cpu_convolution.use_where_faster()
    bar = Progress(len(paths), "images", enabled=None if progress else False)
    positions, logits = [], []
    for batch_positions, images in _decoded_files(paths, image_size, batch_size).as_numpy_iterator():
        positions.append(batch_positions)
        logits.append(np.asarray(model.predict_on_batch(images), dtype=np.float32))
        bar.update(int(batch_positions[-1]) + 1)
    bar.update(len(paths))
    bar.close()
    positions = np.concatenate(positions) if positions else np.zeros([0], np.int64)
    num_classes = model.output_shape[-1]
    logits = np.concatenate(logits) if logits else np.zeros([0, num_classes], np.float32)
    decoded = set(positions.tolist())
    skipped = [(path, DECODE_FAILURE) for i, path in enumerate(paths) if i not in decoded]
    return ClassifiedFiles(positions, logits, skipped)
