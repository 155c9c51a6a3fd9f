"""The evaluation's figures as PNG files (matplotlib, Agg canvas, no pyplot).

- `plot_confusion_matrix`: counts, rows the true class, columns the
  predicted class, class names as tick labels.
- `plot_comparison`: accuracy of several models per domain and overall, as
  grouped bars.

Example:

```python
import numpy as np
from keras_ldrop.inference import plots
plots.plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ["cat", "dog"], "photos", "cm.png")
plots.plot_comparison(["a", "b"], ["photos", "overall"], [[0.8, 0.8], [0.6, 0.6]], "cmp.png")
```
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=120, bbox_inches="tight")


def plot_confusion_matrix(matrix, class_names, title, path):
    """Writes a confusion matrix to `path` (PNG), each cell labelled with its count.

    Args:
        matrix: `[n, n]` counts, `matrix[i, j]` images of class `i` predicted `j`.
        class_names: the `n` class names, in matrix order.
        title: the figure's title.
        path: the PNG file to write.
    """
    matrix = np.asarray(matrix)
    side = max(4.0, 0.5 * len(class_names) + 2)
    figure = Figure(figsize=(side + 1, side))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, labels=class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(
            column, row, str(count), ha="center", va="center", fontsize=8,
            color="white" if count > threshold else "black",
        )
    _save(figure, path)


def plot_comparison(labels, columns, accuracies, path):
    """Writes grouped bars of accuracy (%) per column, one bar per model, to `path` (PNG).

    Args:
        labels: the models' names.
        columns: the groups, e.g. the domains and `"overall"`.
        accuracies: `[len(labels)][len(columns)]` accuracies in [0, 1], or
            `None` where a column had no image (no bar).
        path: the PNG file to write.
    """
    figure = Figure(figsize=(max(6.0, 1.2 * len(columns) * max(len(labels), 2) / 2 + 2), 4.5))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    width = 0.8 / len(labels)
    positions = np.arange(len(columns))
    for m, (label, row) in enumerate(zip(labels, accuracies)):
        heights = [np.nan if value is None else 100 * value for value in row]
        axis.bar(positions + (m - (len(labels) - 1) / 2) * width, heights, width, label=label)
    axis.set_xticks(positions, labels=columns, rotation=30 if len(columns) > 6 else 0)
    axis.set_ylabel("accuracy (%)")
    axis.set_ylim(0, 100)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    _save(figure, path)
