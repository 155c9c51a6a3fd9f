"""The comparison tables as terminal text, Markdown and LaTeX.

Each `Summary` (one setting) gives two tables: o.o.d. accuracy (the test
domain's in split) and i.i.d. accuracy (training-domain validation). Rows are
methods at each dropout rate, columns the test domains and their average;
cells are percentages, `mean ± standard error` over trials (the mean alone for
a single trial, a dash where no run reported).

Example:

>>> from keras_ldrop.experiments.collect import Estimate
>>> from keras_ldrop.experiments.tables import format_estimate
>>> format_estimate(Estimate.of([0.8, 0.9]), "text")
'85.0 ± 5.0'
"""

from keras_ldrop.experiments.selection import SELECTION_LABELS

STYLES = ("text", "markdown", "latex")
METRICS = {
    "ood": "o.o.d. accuracy (test domain)",
    "iid": "i.i.d. accuracy (training-domain validation)",
}
_MISSING = {"text": "-", "markdown": "-", "latex": "--"}
_PLUS_MINUS = {"text": "±", "markdown": "±", "latex": "$\\pm$"}


def format_estimate(estimate, style):
    """`mean ± stderr` in percent with one decimal; a dash for `None`."""
    if estimate is None:
        return _MISSING[style]
    text = f"{100 * estimate.mean:.1f}"
    if estimate.stderr is not None:
        text += f" {_PLUS_MINUS[style]} {100 * estimate.stderr:.1f}"
    return text


def format_rate(rate):
    """`0`, `0.5`, `0.9`: the rate as written in the paper."""
    return f"{rate:g}"


def title(summary, metric, selection):
    """The table's caption: setting, metric and model selection."""
    return (
        f"{summary.setting.label}: {METRICS[metric]}, %; model selection: "
        f"{SELECTION_LABELS[selection]}"
    )


def footnote(summary):
    """How to read the cells: trials counted and what the soups select."""
    counts = sorted(
        {
            estimate.count
            for row in summary.rows
            for estimate in (*row.ood.values(), *row.iid.values())
        }
    )
    trials = "n = " + (
        str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    )
    return (
        f"Mean ± standard error over trials ({trials}). Soups and ensembles of "
        "final models combine the final models of the runs that differ only in "
        "the searched hyperparameters; the model selection does not apply to them."
    )


def cells(summary, metric, style):
    """`(header, rows)`: lists of strings, rows by method and rate."""
    header = ["Method", "Rate", *(summary.column_label(c) for c in summary.columns)]
    rows = []
    for row in summary.rows:
        estimates = getattr(row, metric)
        rows.append(
            [
                row.method,
                format_rate(row.rate),
                *(format_estimate(estimates.get(c), style) for c in summary.columns),
            ]
        )
    return header, rows


def render(summaries, selection, style):
    """Every setting's o.o.d. then i.i.d. table, in `style`."""
    if style not in STYLES:
        raise ValueError(f"Unknown table style {style!r}; expected one of {STYLES}.")
    renderer = {"text": _text, "markdown": _markdown, "latex": _latex}[style]
    return "\n".join(
        renderer(summary, metric, selection)
        for summary in summaries
        for metric in METRICS
    )


def _text(summary, metric, selection):
    header, rows = cells(summary, metric, "text")
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(values):
        left = [v.ljust(w) for v, w in zip(values[:2], widths[:2])]
        right = [v.rjust(w) for v, w in zip(values[2:], widths[2:])]
        return "  ".join(left + right).rstrip()

    rule = "-" * len(line(header))
    body = [line(row) for row in rows]
    return "\n".join(
        [title(summary, metric, selection), rule, line(header), rule, *body, rule,
         footnote(summary), ""]
    )


def _markdown(summary, metric, selection):
    header, rows = cells(summary, metric, "markdown")
    lines = [
        f"#### {title(summary, metric, selection)}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---", "---:"] + ["---:"] * (len(header) - 2)) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        footnote(summary),
        "",
    ]
    return "\n".join(lines)


def _latex_escape(text):
    for character, escaped in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"),
                               ("&", "\\&"), ("#", "\\#"), ("±", "$\\pm$")):
        text = text.replace(character, escaped)
    return text


def _latex(summary, metric, selection):
    header, rows = cells(summary, metric, "latex")
    lines = [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{_latex_escape(title(summary, metric, selection))}. "
        f"{_latex_escape(footnote(summary))}}}",
        "\\begin{tabular}{ll" + "r" * (len(header) - 2) + "}",
        "\\toprule",
        " & ".join(_latex_escape(h) for h in header) + " \\\\",
        "\\midrule",
        *(" & ".join([_latex_escape(row[0]), *row[1:]]) + " \\\\" for row in rows),
        "\\bottomrule",
        "\\end{tabular}",
        "\\end{table}",
        "",
    ]
    return "\n".join(lines)
