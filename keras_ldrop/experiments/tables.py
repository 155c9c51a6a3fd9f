"""The comparison tables as terminal text, Markdown and LaTeX.

Each `Summary` (one setting) gives two tables: o.o.d. accuracy (the test
domain's in split) and i.i.d. accuracy (training-domain validation). Rows are
methods at each dropout rate, columns the test domains and their average;
cells are percentages, `mean ± standard error` over trials (the mean alone for
a single trial, a dash where no run reported). Every title names the
estimator (the selection) and every footnote says how to read it. With a
`reference` (see `reference`), the o.o.d. table ends with the published rows
for its dataset (`paper: fine-tuning` at rates 0 and 0.9, their `Avg` only).

Example:

>>> from keras_ldrop.experiments.collect import Estimate
>>> from keras_ldrop.experiments.tables import format_estimate
>>> format_estimate(Estimate.of([0.8, 0.9]), "text")
'85.0 ± 5.0'
"""

from keras_ldrop.experiments.collect import AVERAGE_COLUMN
from keras_ldrop.experiments.reference import NONE, published
from keras_ldrop.experiments.selection import PAPER, SELECTION_LABELS

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
    """The table's caption: setting, metric and estimator."""
    return (
        f"{summary.setting.label}: {METRICS[metric]}, %; estimator: "
        f"{SELECTION_LABELS[selection]}"
    )


def footnote(summary, selection, references=()):
    """How to read the cells: trials counted, the estimator, the soups and the
    published rows."""
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
    sentences = [f"Mean ± standard error over trials ({trials})."]
    if selection == PAPER:
        sentences.append(
            "Each trial's value is the mean over every hyperparameter setting of "
            "its runs, each run at its checkpoint with the best training-domain "
            "validation."
        )
    sentences.append(
        "Soups and ensembles of final models combine the final models of the runs "
        "that differ only in the searched hyperparameters; the model selection "
        "does not apply to them."
    )
    if references:
        sentences.append(reference_note(references))
    return " ".join(sentences)


def reference_note(references):
    """What the published rows are and which rows of ours they correspond to."""
    rows = ", ".join(
        f"'{value.label}' rate {format_rate(value.rate)} (the paper's {value.name})"
        for value in references
    )
    first = references[0]
    return (
        f"Published rows {rows}: o.o.d. means over the test domains, the paper's "
        f"estimator ({first.source}; {first.setup}). Their counterparts are our "
        f"'{first.method}' rows at the same rates, Avg column, under "
        "--selection=paper. The paper publishes no per-domain or i.i.d. value."
    )


def cells(summary, metric, style, references=()):
    """`(header, rows)`: lists of strings, rows by method and rate, then the
    published o.o.d. rows."""
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
    if metric == "ood":
        rows.extend(_published_row(summary, value, style) for value in references)
    return header, rows


def _published_row(summary, value, style):
    return [
        value.label,
        format_rate(value.rate),
        *(
            f"{100 * value.ood:.1f}" if column == AVERAGE_COLUMN else _MISSING[style]
            for column in summary.columns
        ),
    ]


def render(summaries, selection, style, reference=NONE):
    """Every setting's o.o.d. then i.i.d. table, in `style`.

    Args:
        summaries: `Summary`s from `collect.summarize`.
        selection: the estimator the scores were made with, named in titles.
        style: one of `STYLES`.
        reference: `none` or `paper`: published rows for the datasets it has.
    """
    if style not in STYLES:
        raise ValueError(f"Unknown table style {style!r}; expected one of {STYLES}.")
    renderer = {"text": _text, "markdown": _markdown, "latex": _latex}[style]
    return "\n".join(
        renderer(summary, metric, selection, published(reference, summary.setting.dataset))
        for summary in summaries
        for metric in METRICS
    )


def _text(summary, metric, selection, references):
    header, rows = cells(summary, metric, "text", references)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(values):
        left = [v.ljust(w) for v, w in zip(values[:2], widths[:2])]
        right = [v.rjust(w) for v, w in zip(values[2:], widths[2:])]
        return "  ".join(left + right).rstrip()

    rule = "-" * len(line(header))
    body = [line(row) for row in rows]
    return "\n".join(
        [title(summary, metric, selection), rule, line(header), rule, *body, rule,
         footnote(summary, selection, references), ""]
    )


def _markdown(summary, metric, selection, references):
    header, rows = cells(summary, metric, "markdown", references)
    lines = [
        f"#### {title(summary, metric, selection)}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---", "---:"] + ["---:"] * (len(header) - 2)) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        footnote(summary, selection, references),
        "",
    ]
    return "\n".join(lines)


_LATEX_ESCAPES = {
    "\\": "\\textbackslash{}", "_": "\\_", "%": "\\%", "&": "\\&", "#": "\\#",
    "{": "\\{", "}": "\\}", "±": "$\\pm$",
}


def _latex_escape(text):
    return "".join(_LATEX_ESCAPES.get(character, character) for character in text)


def _latex(summary, metric, selection, references):
    header, rows = cells(summary, metric, "latex", references)
    lines = [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{_latex_escape(title(summary, metric, selection))}. "
        f"{_latex_escape(footnote(summary, selection, references))}}}",
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
