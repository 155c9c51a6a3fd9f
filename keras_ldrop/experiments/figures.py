"""The paper's two figures as PNG files (matplotlib, Agg backend).

- `plot_iid_vs_ood`: i.i.d. (training-domain validation) against o.o.d.
  (test domain) accuracy, one panel per setting, one point per method and
  dropout rate (mean over test domains, error bars the standard error over
  trials), in the style of the paper's Figure 1: the soup is a star, the
  ensemble of final models a triangle.
- `plot_ood_vs_rate`: o.o.d. accuracy against the dropout rate, one line per
  method, in the style of the paper's Figure 2.

Both read the `Avg` column of each `Summary`. Figures are drawn on an Agg
canvas without pyplot, so plotting changes no global matplotlib state.

Example:

```python
from keras_ldrop.experiments import collect, figures
summaries = collect.summarize(collect.collect_scores(collect.read_runs("runs/sweep")[0]))
figures.plot_iid_vs_ood(summaries, "iid_vs_ood.png")
figures.plot_ood_vs_rate(summaries, "ood_vs_rate.png")
```
"""

import math

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from keras_ldrop.experiments.collect import AVERAGE_COLUMN, METHODS
from keras_ldrop.experiments.tables import format_rate

MARKERS = dict(zip(METHODS, ("o", "s", "D", "*", "^")))


def _panels(count):
    columns = min(count, 2)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(6 * columns, 4.5 * rows))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for unused in axes.flat[count:]:
        unused.set_visible(False)
    return figure, axes.flat


def _percent(estimate):
    return 100 * estimate.mean, 100 * (estimate.stderr or 0.0)


def _label_panel(axis, summary, x_label):
    axis.set_title(summary.setting.label, fontsize=9)
    axis.set_xlabel(x_label)
    axis.set_ylabel("o.o.d. accuracy (test domain, %)")
    axis.grid(alpha=0.3)
    # Outside the axes: inside, the legend would hide points.
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=120, bbox_inches="tight")


def plot_iid_vs_ood(summaries, path):
    """Writes the i.i.d.-vs-o.o.d. scatter of every setting to `path` (PNG).

    Args:
        summaries: `Summary`s from `collect.summarize`.
        path: the PNG file to write.
    """
    figure, axes = _panels(max(len(summaries), 1))
    for axis, summary in zip(axes, summaries):
        rates = sorted({row.rate for row in summary.rows})
        spread = max(len(rates) - 1, 1)
        colour_of = {
            rate: matplotlib.colormaps["viridis"](index / spread)
            for index, rate in enumerate(rates)
        }
        for row in summary.rows:
            if AVERAGE_COLUMN not in row.ood or AVERAGE_COLUMN not in row.iid:
                continue
            x, x_error = _percent(row.iid[AVERAGE_COLUMN])
            y, y_error = _percent(row.ood[AVERAGE_COLUMN])
            axis.errorbar(
                x, y, xerr=x_error, yerr=y_error,
                marker=MARKERS.get(row.method, "x"),
                markersize=12 if MARKERS.get(row.method) == "*" else 7,
                color=colour_of[row.rate], linestyle="none", capsize=2,
                label=f"{row.method}, rate {format_rate(row.rate)}",
            )
        _label_panel(axis, summary, "i.i.d. accuracy (training-domain validation, %)")
    _save(figure, path)


def plot_ood_vs_rate(summaries, path):
    """Writes o.o.d. accuracy against dropout rate, per setting, to `path` (PNG).

    Args:
        summaries: `Summary`s from `collect.summarize`.
        path: the PNG file to write.
    """
    figure, axes = _panels(max(len(summaries), 1))
    for axis, summary in zip(axes, summaries):
        for method in METHODS:
            points = [
                (row.rate, *_percent(row.ood[AVERAGE_COLUMN]))
                for row in summary.rows
                if row.method == method and AVERAGE_COLUMN in row.ood
            ]
            if not points:
                continue
            rates, means, errors = zip(*points)
            axis.errorbar(
                rates, means, yerr=errors, marker=MARKERS[method], capsize=2,
                label=method,
            )
        _label_panel(axis, summary, "dropout rate")
    _save(figure, path)
