"""Top-k class names with probabilities for image files, from a saved classifier.

`predict_images` is the whole of `apps/predict.py`: it checks the request,
finds the images (folders are searched recursively for `.jpg`, `.jpeg`,
`.png`, `.bmp`, `.gif` and `.webp` files; files named directly are taken
whatever their name), loads the model, and returns the softmax of its logits
for every image, in sorted path order. Files that are not readable images
(scan-time check, or a decode failure while predicting) are skipped and
listed. `top_k` larger than the number of classes gives every class.

Example:

```python
from keras_ldrop.inference.predict import predict_images, format_table
predictions = predict_images("runs/vlcs-0123456789/best.keras", ["photos/"],
                             top_k=3, output="predictions.csv")
print(format_table(predictions, top_k=3))
```
"""

import csv
import dataclasses
import json
import os

import numpy as np

from keras_ldrop.data.user_data import IMAGE_EXTENSIONS
from keras_ldrop.inference.classify import check_files, classify_files, load_classifier
from keras_ldrop.model_card import read_model_card

OUTPUT_FORMATS = (".csv", ".json")


@dataclasses.dataclass(frozen=True)
class Predictions:
    """What a classifier predicts for some image files.

    Attributes:
        class_names: the model's class names; column `j` is `class_names[j]`.
        paths: the images predicted, in sorted order.
        probabilities: float64 `[len(paths), len(class_names)]`, the softmax
            of the logits.
        skipped: `[(path, reason)]` of the files that are not readable images.
    """

    class_names: tuple
    paths: tuple
    probabilities: np.ndarray
    skipped: tuple

    def top(self, k):
        """Returns `(names, probabilities)` of the `k` most probable classes per image.

        `names` is a list of lists of class names, most probable first;
        `probabilities` a `[len(paths), min(k, num_classes)]` array.
        """
        k = min(k, len(self.class_names))
        order = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        names = [[self.class_names[j] for j in row] for row in order]
        return names, np.take_along_axis(self.probabilities, order, axis=1)


def softmax(logits):
    """Row-wise softmax in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def find_images(inputs):
    """Returns the image files named by `inputs` (files and folders), sorted, each once.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: no image file was found.
    """
    found = set()
    for name in inputs:
        if os.path.isdir(name):
            for directory, _, names in os.walk(name, followlinks=True):
                found.update(
                    os.path.join(directory, file_name)
                    for file_name in names
                    if file_name.lower().endswith(IMAGE_EXTENSIONS)
                )
        elif os.path.isfile(name):
            found.add(name)
        else:
            raise FileNotFoundError(f"{name} does not exist.")
    if not found:
        raise ValueError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found in {list(inputs)}."
        )
    return sorted(found)


def check_request(top_k, output):
    """Raises `ValueError` for a `top_k` below 1 or an output file that is neither CSV nor JSON."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"--top_k must be a positive integer; received {top_k!r}.")
    if output is not None and os.path.splitext(output)[1].lower() not in OUTPUT_FORMATS:
        raise ValueError(
            f"--output must end in {' or '.join(OUTPUT_FORMATS)} (the format is "
            f"chosen by the extension); received {output!r}."
        )


def predict_files(model, paths, image_size, batch_size=32, progress=False):
    """Returns the `Predictions` of `model` for image files.

    Args:
        model: a classifier whose model card names its classes.
        paths: image file paths; unreadable ones are skipped and listed.
        image_size: the side of the square images the model takes.
        batch_size: images per batch.
        progress: draw a progress bar on stderr (when it is a terminal).
    """
    class_names = tuple(read_model_card(model)["class_names"])
    paths = sorted(paths)
    readable, skipped = check_files(paths)
    result = classify_files(model, readable, image_size, batch_size, progress)
    skipped = sorted(skipped + result.skipped)
    return Predictions(
        class_names=class_names,
        paths=tuple(readable[i] for i in result.positions),
        probabilities=softmax(result.logits),
        skipped=tuple(skipped),
    )


def write_predictions(predictions, path, top_k):
    """Writes the top-k predictions to a `.csv` or `.json` file (by its extension).

    CSV: a header `path,class_1,probability_1,...,class_k,probability_k`, one
    row per predicted image. JSON: `{"class_names", "top_k", "predictions":
    [{"path", "top": [{"class", "probability"}]}], "skipped": [{"path",
    "reason"}]}`.
    """
    check_request(top_k, path)
    names, probabilities = predictions.top(top_k)
    k = probabilities.shape[1]
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    if path.lower().endswith(".csv"):
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            header = ["path"]
            for rank in range(1, k + 1):
                header += [f"class_{rank}", f"probability_{rank}"]
            writer.writerow(header)
            for image, row_names, row_probabilities in zip(predictions.paths, names, probabilities):
                row = [image]
                for name, probability in zip(row_names, row_probabilities):
                    row += [name, f"{probability:.6f}"]
                writer.writerow(row)
        return
    document = {
        "class_names": list(predictions.class_names),
        "top_k": k,
        "predictions": [
            {
                "path": image,
                "top": [
                    {"class": name, "probability": float(probability)}
                    for name, probability in zip(row_names, row_probabilities)
                ],
            }
            for image, row_names, row_probabilities in zip(predictions.paths, names, probabilities)
        ],
        "skipped": [{"path": image, "reason": reason} for image, reason in predictions.skipped],
    }
    with open(path, "w") as file:
        json.dump(document, file, indent=2)


def format_table(predictions, top_k):
    """The top-k predictions as a text table: one row per image, `class (probability)` per rank."""
    names, probabilities = predictions.top(top_k)
    header = ["path"] + [f"top {rank}" for rank in range(1, probabilities.shape[1] + 1)]
    rows = [
        [image] + [f"{name} ({probability:.3f})" for name, probability in zip(row_names, row)]
        for image, row_names, row in zip(predictions.paths, names, probabilities)
    ]
    widths = [max(len(row[column]) for row in [header] + rows) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [header] + rows
    )


def predict_images(model_path, inputs, top_k=3, output=None, batch_size=32, progress=False):
    """Checks the request, predicts every image of `inputs`, writes `output`.

    Args:
        model_path: a `.keras` classifier saved by keras_ldrop.
        inputs: image files and folders (searched recursively).
        top_k: how many classes to keep per image (all of them when the
            model has fewer).
        output: a `.csv` or `.json` file to write, or `None`.
        batch_size: images per batch.
        progress: draw a progress bar on stderr (when it is a terminal).

    Returns:
        The `Predictions`.

    Raises:
        FileNotFoundError: the model file or an input does not exist.
        ValueError: a bad `top_k` or `output`, no image found or none
            readable, a model that does not carry its class names.
    """
    check_request(top_k, output)
    model, card = load_classifier(model_path)
    paths = find_images(inputs)
    predictions = predict_files(model, paths, card["image_size"], batch_size, progress)
    if not predictions.paths:
        listing = "; ".join(f"{path}: {reason}" for path, reason in predictions.skipped[:3])
        raise ValueError(
            f"None of the {len(paths)} files found is a readable image ({listing}"
            f"{'; ...' if len(paths) > 3 else ''})."
        )
    if output is not None:
        write_predictions(predictions, output, top_k)
    return predictions
