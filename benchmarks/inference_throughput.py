"""Measures apps/predict.py's and apps/evaluate.py's work in images per second; prints one JSON line.

The data: the real VLCS mini images laid out as a user's folder
(`copy_domains`), each file repeated `--copies` times (11 copies: 2,057
JPEGs of 227 px). The model: `--model` (a `.keras` classifier saved by
keras_ldrop), or by default the offline ImageNet EfficientNet-Lite0 with a
5-class head at `--image_size`.

- `predict`: `predict_files` over every image, after one warm-up batch
  (scan-time checks, decode, resize, model, softmax).
- `evaluate`: `evaluate_models` end to end (scan of the layout and the
  files, model load, predictions, metrics, CSV/JSON/PNG reports).

  python benchmarks/inference_throughput.py --copies=11 --image_size=224
"""

import json
import os
import shutil
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from absl import app, flags  # noqa: E402

import keras_ldrop  # noqa: E402
from keras_ldrop.data.copy_domains import copy_domains  # noqa: E402
from keras_ldrop.inference.classify import load_classifier  # noqa: E402
from keras_ldrop.inference.evaluate import evaluate_models  # noqa: E402
from keras_ldrop.inference.predict import find_images, predict_files  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "A .keras classifier. Default: EfficientNet-Lite0 (offline ImageNet weights), 5 classes.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Image side of the default model.")
_COPIES = flags.DEFINE_integer("copies", 11, "Times each of the 187 VLCS mini images is written.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per batch.")


def _write_tree(root, copies):
    source = copy_domains("vlcs_mini", os.path.join(root, "source"))
    tree = os.path.join(root, "data")
    for path in find_images([str(source)]):
        relative = os.path.relpath(path, source)
        os.makedirs(os.path.join(tree, os.path.dirname(relative)), exist_ok=True)
        stem, extension = os.path.splitext(relative)
        for copy in range(copies):
            shutil.copyfile(path, os.path.join(tree, f"{stem}_{copy}{extension}"))
    return tree


def _default_model(path, image_size):
    model = keras_ldrop.build_classifier(
        "efficientnet_lite0_imagenet_offline", 5, 0.9, image_size=image_size,
        class_names=["bird", "car", "chair", "dog", "person"],
        card={"image_size": image_size},
    )
    model.save(path)
    return path


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    for name in ("copies", "batch_size", "image_size"):
        if flags.FLAGS[name].value < 1:
            raise app.UsageError(f"--{name} must be positive; received {flags.FLAGS[name].value}")
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as root:
        tree = _write_tree(root, _COPIES.value)
        model_path = _MODEL.value or _default_model(os.path.join(root, "model.keras"), _IMAGE_SIZE.value)
        model, card = load_classifier(model_path)
        paths = find_images([tree])
        predict_files(model, paths[: _BATCH_SIZE.value], card["image_size"], _BATCH_SIZE.value)
        start = time.perf_counter()
        predictions = predict_files(model, paths, card["image_size"], _BATCH_SIZE.value)
        predict_seconds = time.perf_counter() - start
        start = time.perf_counter()
        (result,) = evaluate_models([model_path], tree, os.path.join(root, "reports"), _BATCH_SIZE.value)
        evaluate_seconds = time.perf_counter() - start
    evaluated = result.metrics["overall"]["images"]
    print(json.dumps({
        "benchmark": "inference_throughput",
        "backend": keras.backend.backend(),
        "model": _MODEL.value or "efficientnet_lite0_imagenet_offline",
        "image_size": card["image_size"],
        "batch_size": _BATCH_SIZE.value,
        "images": len(paths),
        "predict_images_per_second": round(len(predictions.paths) / predict_seconds, 1),
        "evaluate_images_per_second": round(evaluated / evaluate_seconds, 1),
        "predict_seconds": round(predict_seconds, 2),
        "evaluate_seconds": round(evaluate_seconds, 2),
    }))


if __name__ == "__main__":
    app.run(main)
