"""What an evaluation writes and prints: CSV, JSON, confusion PNGs, comparison tables.

Per model, in its folder:
- `predictions.csv`: `path, domain, label, prediction, probability` (the
  true and predicted class names, the predicted class's probability);
- `metrics.json`: `evaluate.compute_metrics`;
- `confusion_<domain>.png`: the domain's confusion matrix, over the classes
  that occur there as truth or prediction (a model's other classes would
  only add empty rows and columns).

With several models, `comparison.md`: accuracy (%) per domain and overall,
one row per model, and `comparison.png`, the same as bars.

Example:

```python
from keras_ldrop.inference import reports
print(reports.format_metrics("vlcs-0123-best", metrics))
print(reports.comparison_table(results, "markdown"))
```
"""

import csv
import json
import os
import re

import numpy as np

from keras_ldrop.inference import plots

OVERALL = "overall"


def _percent(entry):
    return "-" if entry["accuracy"] is None else f"{100 * entry['accuracy']:.2f}"


def _grid(rows, style):
    """Aligned text columns (`"text"`) or a Markdown table (`"markdown"`); first row is the header."""
    if style == "markdown":
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join(["---"] * len(rows[0])) + "|")
        return "\n".join(lines)
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in rows
    )


def format_metrics(label, metrics):
    """A model's accuracy (%) per domain and overall, then per class, as text."""
    overall = metrics["overall"]
    domains = list(metrics["domains"])
    lines = [
        f"{label} ({metrics['model']}): accuracy {_percent(overall)}% on "
        f"{overall['images']} images of {metrics['data']}"
    ]
    rows = [["domain", "images", "accuracy (%)"]]
    for name, entry in [*metrics["domains"].items(), (OVERALL, overall)]:
        rows.append([name, str(entry["images"]), _percent(entry)])
    lines += [_grid(rows, "text"), ""]
    per_class = metrics["per_class"]
    rows = [["class (accuracy %)", *domains, OVERALL]]
    for name in per_class[OVERALL]:
        rows.append(
            [name]
            + [
                _percent(per_class["domains"][d][name]) if name in per_class["domains"][d] else "-"
                for d in domains
            ]
            + [_percent(per_class[OVERALL][name])]
        )
    lines.append(_grid(rows, "text"))
    if metrics["skipped"]:
        lines.append(f"{len(metrics['skipped'])} images could not be decoded and were skipped.")
    return "\n".join(lines)


def comparison_rows(results):
    """`[header, *rows]`: one row per model, accuracy (%) per domain and overall."""
    domains = list(results[0].metrics["domains"])
    rows = [["model", *domains, OVERALL]]
    for result in results:
        metrics = result.metrics
        rows.append(
            [result.label]
            + [_percent(metrics["domains"][d]) for d in domains]
            + [_percent(metrics["overall"])]
        )
    return rows


def comparison_table(results, style="markdown"):
    """The models' accuracy (%) per domain and overall, as Markdown or aligned text."""
    return _grid(comparison_rows(results), style)


def _file_name(domain):
    return "confusion_" + re.sub(r"[^A-Za-z0-9._-]+", "_", domain) + ".png"


def write_model_reports(evaluation, metrics, folder):
    """Writes `predictions.csv`, `metrics.json` and a confusion PNG per domain to `folder`."""
    os.makedirs(folder, exist_ok=True)
    names = evaluation.class_names
    with open(os.path.join(folder, "predictions.csv"), "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "domain", "label", "prediction", "probability"])
        for domain in evaluation.domains:
            for path, label, prediction, probability in zip(
                domain.paths, domain.labels, domain.predictions, domain.top_probabilities
            ):
                writer.writerow(
                    [path, domain.name, names[label], names[prediction], f"{probability:.6f}"]
                )
    with open(os.path.join(folder, "metrics.json"), "w") as file:
        json.dump(metrics, file, indent=2)
    for domain in evaluation.domains:
        matrix = np.asarray(metrics["confusion_matrices"][domain.name])
        used = np.union1d(domain.labels, domain.predictions).astype(int)
        plots.plot_confusion_matrix(
            matrix[np.ix_(used, used)],
            [names[i] for i in used],
            f"{os.path.basename(folder)} on {domain.name}: "
            f"accuracy {_percent(metrics['domains'][domain.name])}%",
            os.path.join(folder, _file_name(domain.name)),
        )


def write_comparison(results, output_dir):
    """Writes `comparison.md` and `comparison.png` for several `ModelResult`s."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "comparison.md"), "w") as file:
        file.write(comparison_table(results, "markdown") + "\n")
    domains = list(results[0].metrics["domains"])
    plots.plot_comparison(
        [result.label for result in results],
        [*domains, OVERALL],
        [
            [result.metrics["domains"][d]["accuracy"] for d in domains]
            + [result.metrics["overall"]["accuracy"]]
            for result in results
        ],
        os.path.join(output_dir, "comparison.png"),
    )
