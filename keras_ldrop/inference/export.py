"""A trained classifier as a deployable artefact: a TensorFlow SavedModel or an ONNX file.

The artefact takes float32 RGB pixels in [0, 255], channels last, as
`pixels` of shape `(batch, H, W, 3)` (the model's square image size), and
returns the softmax probabilities (default) or the logits, as `probabilities`
or `logits` of shape `(batch, num_classes)`; output `i` is class
`class_names[i]`. It carries the class names and the model card: in an ONNX
file as `metadata_props` (`class_names`, `model_card`: JSON; `outputs`), in a
SavedModel folder as `assets.extra/model_card.json` with the same keys.

Every export is checked before it is moved into place: the artefact is run
(onnxruntime, `tf.saved_model.load`) on a batch and on a single image and
compared with the Keras model. A backend that cannot produce or run a format
raises `ExportError` naming the backends that can; the `.keras` file loads
under any backend. Measured (tiny KerasHub ResNet, keras 3.15.1): SavedModel
works under TensorFlow and JAX (torch.export rejects Keras' dynamic batch),
ONNX under TensorFlow (tf2onnx) and torch (the TorchScript exporter); under
JAX, jax2onnx writes a file that onnxruntime rejects for ResNet's max pooling.

Example:

```python
from keras_ldrop.inference.classify import load_classifier
from keras_ldrop.inference.export import export_classifier, read_export_card
model, _ = load_classifier("runs/vlcs-0123456789/best.keras")
exported = export_classifier(model, "vlcs.onnx", format="onnx")
exported.max_difference                       # e.g. 4e-07
read_export_card("vlcs.onnx")["class_names"]  # ['bird', 'car', ...]
```
"""

import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import tempfile

import keras
import numpy as np

from keras_ldrop.model_card import read_model_card, square_image_size

FORMATS = ("saved_model", "onnx")
OUTPUTS = ("probabilities", "logits")
INPUT_NAME = "pixels"
CARD_FILE = os.path.join("assets.extra", "model_card.json")
DEFAULT_TOLERANCE = 1e-4

_KERAS_FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx"}
_LABELS = {"saved_model": "SavedModel", "onnx": "ONNX"}
# Backends measured to write an artefact that runs and matches (see above);
# used only to say where to go when an export fails.
_WORKING_BACKENDS = {"saved_model": ("tensorflow", "jax"), "onnx": ("tensorflow", "torch")}
# What `model.export(format="onnx")` imports on each backend (keras/src/export/onnx.py).
_ONNX_CONVERTERS = {"tensorflow": ("tf2onnx",), "jax": ("jax2onnx",), "torch": ()}
_VERIFY_BATCH = 4


class ExportError(RuntimeError):
    """An artefact could not be written, could not be run, or differs from the model."""


@dataclasses.dataclass(frozen=True)
class ExportedClassifier:
    """What `export_classifier` wrote.

    Attributes:
        path: the artefact (an ONNX file or a SavedModel folder).
        format: `"saved_model"` or `"onnx"`.
        outputs: `"probabilities"` or `"logits"`, also the output's name.
        input_shape: `(None, H, W, 3)`, the input `pixels`.
        class_names: output `i` is `class_names[i]`.
        max_difference: the largest absolute difference between the
            artefact's and the Keras model's outputs on the check inputs.
        checked_images: how many images the check used.
    """

    path: str
    format: str
    outputs: str
    input_shape: tuple
    class_names: list
    max_difference: float
    checked_images: int


def export_classifier(
    model,
    output_path,
    format="saved_model",
    outputs="probabilities",
    verify_images=None,
    overwrite=False,
    tolerance=DEFAULT_TOLERANCE,
):
    """Writes a keras_ldrop classifier as a SavedModel or ONNX file, and checks it.

    Args:
        model: a classifier from `keras_ldrop.build_classifier` with class
            names (e.g. a run's `best.keras`, loaded).
        output_path: the SavedModel folder or the ONNX file to write.
        format: `"saved_model"` or `"onnx"`.
        outputs: `"probabilities"` (softmax) or `"logits"`.
        verify_images: float32 `(N, H, W, 3)` pixels in [0, 255] to check the
            artefact on; default: 4 fixed random images.
        overwrite: replace an existing `output_path`.
        tolerance: the largest accepted difference, in units of
            `max(1, max |Keras outputs|)`.

    Returns:
        An `ExportedClassifier`.

    Raises:
        ValueError: a bad `format`, `outputs` or `verify_images`, or a model
            without class names or square image size
            (`MissingModelCardError`).
        FileExistsError: `output_path` exists and `overwrite` is False.
        ExportError: a missing package, or this backend cannot write or run
            the format, or the artefact differs from the model; nothing is
            left at `output_path`.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}; received {format!r}.")
    if outputs not in OUTPUTS:
        raise ValueError(f"outputs must be one of {list(OUTPUTS)}; received {outputs!r}.")
    card = read_model_card(model)
    image_size = square_image_size(card, repr(model.name))
    images = _check_images(verify_images, image_size)
    output_path = os.fspath(output_path)
    if os.path.lexists(output_path) and not overwrite:
        raise FileExistsError(
            f"{output_path} exists; choose another path or allow overwriting it."
        )
    _check_packages(format)

    wrapper = _serving_model(model, image_size, outputs)
    # Called, not `predict`ed: `export` needs a model that has been called.
    expected = np.concatenate([
        keras.ops.convert_to_numpy(wrapper(images[start:start + 32])[outputs])
        for start in range(0, len(images), 32)
    ])
    parent = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        artefact = os.path.join(staging, os.path.basename(output_path))
        _write(wrapper, artefact, format, outputs, card)
        difference = _compare(artefact, format, outputs, images, expected, tolerance)
        if os.path.lexists(output_path):
            _remove(output_path)
        os.replace(artefact, output_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportedClassifier(
        path=output_path,
        format=format,
        outputs=outputs,
        input_shape=(None, image_size, image_size, 3),
        class_names=card["class_names"],
        max_difference=difference,
        checked_images=len(images),
    )


def run_artefact(path, images):
    """Runs an exported classifier on pixels; returns its outputs as numpy.

    Args:
        path: an ONNX file or a SavedModel folder written by
            `export_classifier`.
        images: float32 `(N, H, W, 3)` pixels in [0, 255].

    Raises:
        ExportError: the artefact cannot be loaded or run here.
    """
    try:
        return _runner(path)(np.asarray(images, dtype="float32"))
    except Exception as error:  # any failure of a foreign runtime means the same
        raise ExportError(f"{path} cannot be run: {_first_line(error)}") from error


def read_export_card(path):
    """Returns `{"class_names", "model_card", "outputs"}` stored with an artefact.

    Args:
        path: an ONNX file or a SavedModel folder written by
            `export_classifier`.

    Raises:
        ValueError: the artefact carries no keras_ldrop card.
    """
    if os.path.isdir(path):
        card_path = os.path.join(path, CARD_FILE)
        if not os.path.isfile(card_path):
            raise ValueError(f"SavedModel {path} has no {CARD_FILE}.")
        with open(card_path) as file:
            return json.load(file)
    import onnx

    metadata = {
        entry.key: entry.value
        for entry in onnx.load(path, load_external_data=False).metadata_props
    }
    missing = {"class_names", "model_card", "outputs"} - set(metadata)
    if missing:
        raise ValueError(f"ONNX file {path} lacks the metadata {sorted(missing)}.")
    return {
        "class_names": json.loads(metadata["class_names"]),
        "model_card": json.loads(metadata["model_card"]),
        "outputs": metadata["outputs"],
    }


def _runner(path):
    """Loads an artefact once; returns a function from pixels to its outputs."""
    if os.path.isdir(path):
        import tensorflow as tf

        loaded = tf.saved_model.load(path)  # kept referenced by `run`: it owns the variables

        def run(images):
            results = loaded.signatures["serving_default"](**{INPUT_NAME: tf.constant(images)})
            return next(iter(results.values())).numpy()

        return run
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # failures are raised, not logged
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {INPUT_NAME: images})[0]


def _check_images(images, image_size):
    if images is None:
        rng = np.random.default_rng(0)
        return rng.uniform(0, 255, (_VERIFY_BATCH, image_size, image_size, 3)).astype("float32")
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4 or images.shape[1:] != (image_size, image_size, 3) or not len(images):
        raise ValueError(
            f"verify_images must be pixels of shape (N, {image_size}, "
            f"{image_size}, 3) with N >= 1; received shape {images.shape}."
        )
    return images


def _check_packages(format):
    backend = keras.backend.backend()
    needed = ("onnx", "onnxruntime", *_ONNX_CONVERTERS.get(backend, ())) if format == "onnx" else ()
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"ONNX export under the {backend} backend needs {', '.join(missing)}: "
            "pip install 'keras_ldrop[export]'."
        )


def _serving_model(model, image_size, outputs):
    pixels = keras.Input((image_size, image_size, 3), name=INPUT_NAME, dtype="float32")
    logits = model(pixels)
    if outputs == "probabilities":
        result = keras.layers.Softmax(dtype="float32", name=outputs)(logits)
    else:
        result = keras.layers.Identity(dtype="float32", name=outputs)(logits)
    return keras.Model(pixels, {outputs: result}, name=f"{model.name}_{outputs}")


def _write(wrapper, path, format, outputs, card):
    # tf2onnx logs every conversion pass at INFO; the user needs only the result.
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    try:
        wrapper.export(path, format=_KERAS_FORMATS[format], verbose=False)
    except Exception as error:  # every converter raises its own types
        raise _backend_error(format, f"the export raised {_first_line(error)}") from error
    stored = {"class_names": card["class_names"], "model_card": card, "outputs": outputs}
    if format == "onnx":
        _store_onnx_card(path, stored)
    else:
        os.makedirs(os.path.join(path, os.path.dirname(CARD_FILE)), exist_ok=True)
        with open(os.path.join(path, CARD_FILE), "w") as file:
            json.dump(stored, file, indent=2)


def _store_onnx_card(path, stored):
    """Names the only output `stored["outputs"]` and adds the card as metadata."""
    import onnx

    proto = onnx.load(path)
    graph = proto.graph
    old, new = graph.output[0].name, stored["outputs"]
    if old != new:
        taken = {name for node in graph.node for name in node.output}
        if new in taken:
            raise ExportError(f"Cannot name the ONNX output {new!r}: the graph already has a tensor of that name.")
        for node in graph.node:
            node.input[:] = [new if name == old else name for name in node.input]
            node.output[:] = [new if name == old else name for name in node.output]
        graph.output[0].name = new
    for key, value in stored.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.save(proto, path)


def _compare(path, format, outputs, images, expected, tolerance):
    try:
        run = _runner(path)
        batch, single = run(images), run(images[:1])
    except Exception as error:  # any failure of a foreign runtime means the same
        raise _backend_error(format, f"the artefact cannot be run: {_first_line(error)}") from error
    if batch.shape != expected.shape or single.shape != expected[:1].shape:
        raise _backend_error(
            format,
            f"the artefact returned shapes {batch.shape} and {single.shape} for "
            f"{expected.shape} and {expected[:1].shape}",
        )
    difference = float(max(np.abs(batch - expected).max(), np.abs(single - expected[:1]).max()))
    limit = tolerance * max(1.0, float(np.abs(expected).max()))
    if not difference <= limit:
        raise _backend_error(
            format,
            f"its {outputs} differ from the Keras model's by {difference:.3g}, "
            f"more than {limit:.3g}",
        )
    return difference


def _backend_error(format, reason):
    backend = keras.backend.backend()
    others = [name for name in _WORKING_BACKENDS[format] if name != backend]
    return ExportError(
        f"{_LABELS[format]} export under the {backend} backend failed ({reason}); "
        f"run it with KERAS_BACKEND={' or '.join(others)}: the .keras file loads "
        "under any backend."
    )


def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)
