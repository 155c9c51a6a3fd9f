"""Compare the methods of a sweep: tables (terminal, Markdown, LaTeX) and figures.

    python apps/collect_results.py --input_dir=runs/sweep-vlcs --output_dir=results

Reads every finished run under --input_dir and prints, per dataset and test
domain and on average, mean +- standard error over trials of the o.o.d. and
i.i.d. accuracy of plain fine-tuning (rate 0), dropout at each rate, weight
averaging and ensembles along the trajectory, and, across the runs of each
cell, the uniform soup and the ensemble of final models. Writes
results_<selection>.md, results_<selection>.tex, iid_vs_ood_<selection>.png
and ood_vs_rate_<selection>.png to --output_dir. Soups are evaluated once and
cached under <input_dir>/soups.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_ldrop.assets import MissingAssetError  # noqa: E402
from keras_ldrop.data import DatasetNotFoundError  # noqa: E402
from keras_ldrop.experiments import collect, figures, tables  # noqa: E402
from keras_ldrop.experiments.selection import SELECTIONS  # noqa: E402

flags.DEFINE_string("input_dir", None, "Folder searched for run folders (results.jsonl + done); required.")
# Also a flag of the other apps; `allow_override` lets one process (the tests) load them all.
flags.DEFINE_string("output_dir", None, "Where the tables and figures go. Default: --input_dir.", allow_override=True)
flags.DEFINE_enum("selection", "training_domain", SELECTIONS, "Model selection: training-domain validation, oracle (test-domain validation, last checkpoint) or last checkpoint.")
flags.DEFINE_boolean("soups", True, "Evaluate the uniform soups and ensembles of final models (loads final.keras; cached).")
FLAGS = flags.FLAGS


def write_outputs(summaries, selection, output_dir):
    """Writes the Markdown and LaTeX tables and the two figures; returns their paths."""
    os.makedirs(output_dir, exist_ok=True)
    paths = {
        "markdown": os.path.join(output_dir, f"results_{selection}.md"),
        "latex": os.path.join(output_dir, f"results_{selection}.tex"),
        "iid_vs_ood": os.path.join(output_dir, f"iid_vs_ood_{selection}.png"),
        "ood_vs_rate": os.path.join(output_dir, f"ood_vs_rate_{selection}.png"),
    }
    for style in ("markdown", "latex"):
        with open(paths[style], "w") as file:
            file.write(tables.render(summaries, selection, style))
    figures.plot_iid_vs_ood(summaries, paths["iid_vs_ood"])
    figures.plot_ood_vs_rate(summaries, paths["ood_vs_rate"])
    return paths


def main(argv):
    if len(argv) > 1:
        sys.exit(f"collect_results: error: unexpected arguments {argv[1:]}")
    if not FLAGS.input_dir:
        sys.exit("collect_results: error: give --input_dir, the sweep's folder.")
    try:
        runs, unfinished = collect.read_runs(FLAGS.input_dir)
        if not runs:
            raise FileNotFoundError(
                f"No finished run (results.jsonl and done) under {FLAGS.input_dir}."
            )
        cache = os.path.join(FLAGS.input_dir, collect.SOUP_CACHE) if FLAGS.soups else None
        summaries = collect.summarize(collect.collect_scores(runs, FLAGS.selection, cache))
    except (FileNotFoundError, ValueError, DatasetNotFoundError, MissingAssetError) as error:
        sys.exit(f"collect_results: error: {' '.join(str(error).split())}")
    print(f"{len(runs)} finished runs read; {len(unfinished)} unfinished left out.")
    print(tables.render(summaries, FLAGS.selection, "text"))
    output_dir = FLAGS.output_dir or FLAGS.input_dir
    for name, path in write_outputs(summaries, FLAGS.selection, output_dir).items():
        print(f"  {name}: {path}")


if __name__ == "__main__":
    app.run(main)
