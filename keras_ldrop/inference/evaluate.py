"""Accuracy of saved classifiers on a user's domains: per domain, per class, overall.

The data is a folder `PATH/<domain>/<class>/<image>` (one domain or more) or
a CSV manifest (see `keras_ldrop.data.user_data`). Its classes are matched to
the model's by name: a class the model does not know is an error, a model
class absent from the data is fine. Each model decodes the images at its own
image size (its model card's) with the evaluation transform.

`evaluate_models` is the whole of `apps/evaluate.py`: for each model it
writes `<output_dir>/<label>/predictions.csv`, `metrics.json` and one
confusion-matrix PNG per domain, and with several models a comparison
table (`comparison.md`) and bar chart (`comparison.png`); see `reports`.

Example:

```python
from keras_ldrop.inference.evaluate import evaluate_models
results = evaluate_models(["runs/a/best.keras", "runs/b/best.keras"],
                          "new_domains/", "evaluation/")
[(result.label, result.metrics["overall"]["accuracy"]) for result in results]
```
"""

import dataclasses
import os

import numpy as np

from keras_ldrop.data import load_domains, user_dataset
from keras_ldrop.inference import reports
from keras_ldrop.inference.classify import check_model_file, classify_files, load_classifier
from keras_ldrop.inference.predict import softmax


@dataclasses.dataclass(frozen=True)
class DomainPredictions:
    """One domain's images with their true and predicted model class indices.

    Attributes:
        name: the domain's name.
        paths: the images that were classified.
        labels: int array, the true class as an index into the model's classes.
        predictions: int array, the model's most probable class.
        top_probabilities: float array, the probability of that class.
    """

    name: str
    paths: tuple
    labels: np.ndarray
    predictions: np.ndarray
    top_probabilities: np.ndarray


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A model's predictions on every domain of some data.

    Attributes:
        model_path: the `.keras` file evaluated.
        data: the data folder or manifest.
        class_names: the model's class names.
        domains: one `DomainPredictions` per domain, in the data's order.
        skipped: `[(path, reason)]` of images that failed to decode.
    """

    model_path: str
    data: str
    class_names: tuple
    domains: tuple
    skipped: tuple


@dataclasses.dataclass(frozen=True)
class ModelResult:
    """One evaluated model: its `label`, `Evaluation`, `metrics` and output `folder`."""

    label: str
    evaluation: Evaluation
    metrics: dict
    folder: str


def class_mapping(data_classes, model_classes):
    """Returns, for each data class, the index of the model class of that name.

    Raises:
        ValueError: some data classes are not classes of the model (the
            message names them and the model's classes).
    """
    index = {name: i for i, name in enumerate(model_classes)}
    unknown = [name for name in data_classes if name not in index]
    if unknown:
        raise ValueError(
            f"The data has classes the model does not know: {unknown}. The "
            f"model's classes are {list(model_classes)}."
        )
    return np.array([index[name] for name in data_classes], dtype=np.int64)


def evaluate_model(model, class_names, image_size, domains, data_classes, batch_size=32, progress=False):
    """Classifies every image of `domains` with `model`.

    Args:
        model: a classifier taking float32 RGB pixels in [0, 255].
        class_names: the model's class names.
        image_size: the side of the square images the model takes.
        domains: `DomainExamples` with file paths; labels index `data_classes`.
        data_classes: the data's class names.
        batch_size: images per batch.
        progress: draw a progress bar on stderr (when it is a terminal).

    Returns:
        `(domain_predictions, skipped)`: a tuple of `DomainPredictions`, and
        `[(path, reason)]` of images that failed to decode.
    """
    mapping = class_mapping(data_classes, class_names)
    paths = [path for domain in domains for path in domain.paths]
    labels = mapping[np.concatenate([domain.labels for domain in domains])]
    owner = np.repeat(np.arange(len(domains)), [len(domain) for domain in domains])
    result = classify_files(model, paths, image_size, batch_size, progress)
    probabilities = softmax(result.logits)
    predictions = probabilities.argmax(axis=1)
    top = probabilities.max(axis=1)
    per_domain = []
    for d, domain in enumerate(domains):
        rows = np.flatnonzero(owner[result.positions] == d)
        positions = result.positions[rows]
        per_domain.append(
            DomainPredictions(
                name=domain.name,
                paths=tuple(paths[i] for i in positions),
                labels=labels[positions],
                predictions=predictions[rows],
                top_probabilities=top[rows],
            )
        )
    return tuple(per_domain), tuple(result.skipped)


def _accuracy(labels, predictions):
    count = len(labels)
    correct = int(np.sum(labels == predictions))
    return {"accuracy": correct / count if count else None, "correct": correct, "images": count}


def _per_class(labels, predictions, class_names):
    return {
        class_names[c]: _accuracy(labels[labels == c], predictions[labels == c])
        for c in np.unique(labels)
    }


def confusion_matrix(labels, predictions, num_classes):
    """Counts `[true class, predicted class]` over the model's classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def compute_metrics(evaluation):
    """The JSON-ready metrics of an `Evaluation`.

    Returns:
        `{"model", "data", "class_names", "overall", "domains",
        "per_class", "confusion_matrices", "skipped"}`: accuracies are
        `{"accuracy", "correct", "images"}` (accuracy `None` without
        images); `overall` counts every image; `per_class` holds, under
        `"overall"` and `"domains"` (by domain), an accuracy for each
        class present there; confusion matrices
        are over the model's classes, rows true, columns predicted.
    """
    names = evaluation.class_names
    labels = np.concatenate([domain.labels for domain in evaluation.domains])
    predictions = np.concatenate([domain.predictions for domain in evaluation.domains])
    per_class = {
        "overall": _per_class(labels, predictions, names),
        "domains": {
            domain.name: _per_class(domain.labels, domain.predictions, names)
            for domain in evaluation.domains
        },
    }
    return {
        "model": evaluation.model_path,
        "data": evaluation.data,
        "class_names": list(names),
        "overall": _accuracy(labels, predictions),
        "domains": {
            domain.name: _accuracy(domain.labels, domain.predictions)
            for domain in evaluation.domains
        },
        "per_class": per_class,
        "confusion_matrices": {
            domain.name: confusion_matrix(domain.labels, domain.predictions, len(names)).tolist()
            for domain in evaluation.domains
        },
        "skipped": [{"path": path, "reason": reason} for path, reason in evaluation.skipped],
    }


def model_labels(model_paths):
    """Short distinct names for models: `<folder>-<file stem>`, with `-2`, `-3` on repeats.

    Example: `runs/vlcs-0123/best.keras` -> `vlcs-0123-best`.
    """
    labels = []
    for path in model_paths:
        absolute = os.path.abspath(path)
        folder = os.path.basename(os.path.dirname(absolute))
        stem = os.path.splitext(os.path.basename(absolute))[0]
        base = f"{folder}-{stem}" if folder else stem
        label, repeat = base, 1
        while label in labels:
            repeat += 1
            label = f"{base}-{repeat}"
        labels.append(label)
    return labels


def evaluate_models(model_paths, data, output_dir, batch_size=32, progress=False):
    """Evaluates each model on `data` and writes its reports under `output_dir`.

    Args:
        model_paths: `.keras` classifiers saved by keras_ldrop.
        data: a folder `<domain>/<class>/<image>` or a CSV manifest.
        output_dir: receives `<label>/` per model (see `model_labels`) and,
            with several models, `comparison.md` and `comparison.png`.
        batch_size: images per batch.
        progress: draw a progress bar on stderr (when it is a terminal).

    Returns:
        A list of `ModelResult`, in the order of `model_paths`.

    Raises:
        FileNotFoundError: a model file is missing; the data has a domain
            without a readable image.
        ValueError: no model given; the data is not laid out as domains
            (`DatasetLayoutError`); a model lacks its class names or image
            size, or does not know some of the data's classes.
    """
    if not model_paths:
        raise ValueError("Give at least one model to evaluate.")
    for path in model_paths:
        check_model_file(path)
    spec = user_dataset(data, min_domains=1)
    domains = load_domains(spec)
    results = []
    for path, label in zip(model_paths, model_labels(model_paths)):
        model, card = load_classifier(path)
        per_domain, skipped = evaluate_model(
            model, card["class_names"], card["image_size"], domains, spec.classes,
            batch_size, progress,
        )
        evaluation = Evaluation(
            model_path=path, data=spec.location, class_names=tuple(card["class_names"]),
            domains=per_domain, skipped=skipped,
        )
        metrics = compute_metrics(evaluation)
        folder = os.path.join(output_dir, label)
        reports.write_model_reports(evaluation, metrics, folder)
        results.append(ModelResult(label, evaluation, metrics, folder))
    if len(results) > 1:
        reports.write_comparison(results, output_dir)
    return results
