"""The paper's figures as PNG files (matplotlib, Agg backend).

- `plot_iid_vs_ood`: i.i.d. (training-domain validation) against o.o.d.
  (test domain) accuracy, one panel per setting, one point per method and
  dropout rate (mean over test domains, error bars the standard error over
  trials): the soup is a star, the ensemble of final models a triangle.
- `plot_ood_vs_rate`: o.o.d. accuracy against the dropout rate, one line per
  method.
- `plot_cloud`: the paper's cloud figure (see `clouds`): per method and
  rate, one small point per choice of one hyperparameter setting for each
  test domain, and the centroid as a large black-edged marker; the soup and
  the ensemble of final models, one value per cell, as one black-edged marker.

The first two read the `Avg` column of each `Summary`. Every figure names its
estimator in its title. With `reference="paper"`, the published o.o.d. means
are drawn for the datasets that have them: as dashed horizontal lines where
the x axis is i.i.d. accuracy (the paper publishes no i.i.d. value), as
crosses at their rates against the dropout rate. Figures are drawn on an Agg
canvas without pyplot, so plotting changes no global matplotlib state; each
function returns its `Figure`.

Example:

```python
from keras_ldrop.experiments import clouds, collect, figures
runs, _ = collect.read_runs("runs/sweep")
summaries = collect.summarize(collect.collect_scores(runs, "paper"))
figures.plot_iid_vs_ood(summaries, "iid_vs_ood.png", "paper", reference="paper")
figures.plot_ood_vs_rate(summaries, "ood_vs_rate.png", "paper", reference="paper")
figures.plot_cloud(clouds.clouds(collect.paper_run_scores(runs)), summaries,
                   "cloud.png", reference="paper")
```
"""

import math
import textwrap

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from keras_ldrop.experiments.collect import AVERAGE_COLUMN, METHODS
from keras_ldrop.experiments.reference import NONE, published
from keras_ldrop.experiments.selection import PAPER, SELECTION_LABELS
from keras_ldrop.experiments.soups import FINAL_ENSEMBLE, UNIFORM_SOUP
from keras_ldrop.experiments.tables import format_rate

MARKERS = dict(zip(METHODS, ("o", "s", "D", "*", "^")))
# Methods that combine the runs of a cell: no setting to choose, no cloud.
ONE_VALUE_PER_CELL = (UNIFORM_SOUP, FINAL_ENSEMBLE)
OOD_LABEL = "o.o.d. accuracy (test domain, %)"
IID_LABEL = "i.i.d. accuracy (training-domain validation, %)"
# Inches per panel: the axes, then the legend beside them.
_PANEL_SIZE = (10, 4.5)
_TITLE_CHARACTERS_PER_PANEL = 120


def _panels(count):
    columns = min(count, 2)
    rows = math.ceil(count / columns)
    # The constrained layout makes room for the legends and the title.
    figure = Figure(
        figsize=(_PANEL_SIZE[0] * columns, _PANEL_SIZE[1] * rows), layout="constrained"
    )
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
    axis.set_ylabel(OOD_LABEL)
    axis.grid(alpha=0.3)
    # Outside the axes: inside, the legend would hide points.
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)


def _name_estimator(figure, selection, detail=""):
    columns = round(figure.get_figwidth() / _PANEL_SIZE[0])
    text = f"Estimator: {SELECTION_LABELS[selection]}{detail}"
    figure.suptitle(textwrap.fill(text, _TITLE_CHARACTERS_PER_PANEL * columns), fontsize=9)


def _save(figure, path):
    figure.savefig(path, dpi=120, bbox_inches="tight")


def _draw_published_lines(axis, values, colour_of):
    """The published o.o.d. means as dashed lines: they have no i.i.d. value."""
    for value in values:
        axis.axhline(
            100 * value.ood, linestyle="--", linewidth=1,
            color=colour_of(value), label=(
                f"{value.label}, rate {format_rate(value.rate)}: published o.o.d. "
                f"{100 * value.ood:.1f} (no i.i.d. value)"
            ),
        )


def _rate_colours(rates):
    rates = sorted(set(rates))
    spread = max(len(rates) - 1, 1)
    return {
        rate: matplotlib.colormaps["viridis"](index / spread)
        for index, rate in enumerate(rates)
    }


def plot_iid_vs_ood(summaries, path, selection, reference=NONE):
    """Writes the i.i.d.-vs-o.o.d. scatter of every setting to `path` (PNG).

    Args:
        summaries: `Summary`s from `collect.summarize`.
        path: the PNG file to write.
        selection: the estimator the summaries were made with (the title).
        reference: `none` or `paper`: published o.o.d. means as dashed lines.

    Returns:
        The `Figure`.
    """
    figure, axes = _panels(max(len(summaries), 1))
    for axis, summary in zip(axes, summaries):
        values = published(reference, summary.setting.dataset)
        colour_of = _rate_colours([row.rate for row in summary.rows])
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
        _draw_published_lines(axis, values, lambda v: colour_of.get(v.rate, "grey"))
        _label_panel(axis, summary, IID_LABEL)
    _name_estimator(figure, selection)
    _save(figure, path)
    return figure


def plot_ood_vs_rate(summaries, path, selection, reference=NONE):
    """Writes o.o.d. accuracy against dropout rate, per setting, to `path` (PNG).

    Args:
        summaries: `Summary`s from `collect.summarize`.
        path: the PNG file to write.
        selection: the estimator the summaries were made with (the title).
        reference: `none` or `paper`: published o.o.d. means as black crosses
            joined by a dotted line, one line per method of ours they match.

    Returns:
        The `Figure`.
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
        _draw_published_points(axis, published(reference, summary.setting.dataset))
        _label_panel(axis, summary, "dropout rate")
    _name_estimator(figure, selection)
    _save(figure, path)
    return figure


def _draw_published_points(axis, values):
    labels = dict.fromkeys(value.label for value in values)
    for label in labels:
        chosen = sorted((v.rate, 100 * v.ood) for v in values if v.label == label)
        rates, means = zip(*chosen)
        axis.plot(
            rates, means, marker="X", markersize=9, color="black", linestyle=":",
            label=f"{label} (published o.o.d.)",
        )


def plot_cloud(clouds, summaries, path, reference=NONE):
    """Writes the paper's cloud figure of every setting to `path` (PNG).

    Per method and rate: every point of its `Cloud` (small, translucent) and
    its centroid (large, black edge); the soup and the ensemble of final
    models, which have no setting to choose, as one black-edged marker at
    their `Avg` (i.i.d., o.o.d.). The legend gives each cloud's point count.

    Args:
        clouds: `Cloud`s from `clouds.clouds`.
        summaries: `Summary`s from `collect.summarize` of the paper's
            estimator (one panel each; their soups are drawn).
        path: the PNG file to write.
        reference: `none` or `paper`: published o.o.d. means as dashed lines.

    Returns:
        The `Figure`.
    """
    figure, axes = _panels(max(len(summaries), 1))
    for axis, summary in zip(axes, summaries):
        panel_clouds = [cloud for cloud in clouds if cloud.setting == summary.setting]
        single_rows = [
            row for row in summary.rows
            if row.method in ONE_VALUE_PER_CELL
            and AVERAGE_COLUMN in row.ood and AVERAGE_COLUMN in row.iid
        ]
        colour_of = _pair_colours(
            [(c.method, c.rate) for c in panel_clouds]
            + [(row.method, row.rate) for row in single_rows]
        )
        for cloud in panel_clouds:
            _draw_cloud(axis, cloud, colour_of[(cloud.method, cloud.rate)])
        for row in single_rows:
            _draw_single(axis, row, colour_of[(row.method, row.rate)])
        _draw_published_lines(
            axis, published(reference, summary.setting.dataset),
            lambda v: colour_of.get((v.method, v.rate), "grey"),
        )
        _label_panel(axis, summary, IID_LABEL)
    _name_estimator(
        figure, PAPER,
        ". One small point per choice of one hyperparameter setting for each test "
        "domain (accuracies averaged over the test domains); black edge: centroid, "
        "or a method with one value per cell",
    )
    _save(figure, path)
    return figure


def _pair_colours(pairs):
    """A colour per (method, rate), in order."""
    palette = matplotlib.colormaps["tab10"]
    return {pair: palette(index % 10) for index, pair in enumerate(pairs)}


def _draw_cloud(axis, cloud, colour):
    marker = MARKERS.get(cloud.method, "x")
    axis.scatter(
        100 * cloud.points[:, 0], 100 * cloud.points[:, 1], s=6, marker=marker,
        color=colour, alpha=0.25, linewidths=0,
    )
    count = (
        f"{len(cloud.points)} sampled of {cloud.combinations} points"
        if cloud.sampled else f"{cloud.combinations} points"
    )
    axis.scatter(
        100 * cloud.centroid[0], 100 * cloud.centroid[1], s=140, marker=marker,
        color=colour, edgecolors="black", linewidths=1.2, zorder=4,
        label=f"{cloud.method}, rate {format_rate(cloud.rate)}: {count}",
    )


def _draw_single(axis, row, colour):
    axis.scatter(
        100 * row.iid[AVERAGE_COLUMN].mean, 100 * row.ood[AVERAGE_COLUMN].mean,
        s=180, marker=MARKERS.get(row.method, "x"), color=colour,
        edgecolors="black", linewidths=1.2, zorder=4,
        label=f"{row.method}, rate {format_rate(row.rate)}: one value per cell",
    )
