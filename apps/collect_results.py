"""Compare the methods of a sweep: tables (terminal, Markdown, LaTeX) and figures.

    python apps/collect_results.py --input_dir=runs/sweep-vlcs --output_dir=results

Reads every finished run under --input_dir and prints, per dataset and test
domain and on average, mean +- standard error over trials of the o.o.d. and
i.i.d. accuracy of plain fine-tuning (rate 0), dropout at each rate, weight
averaging and ensembles along the trajectory, and, across the runs of each
cell, the uniform soup and the ensemble of final models. Writes
results_<selection>.md, results_<selection>.tex, iid_vs_ood_<selection>.png
and ood_vs_rate_<selection>.png to --output_dir, and with --selection=paper
the paper's cloud figure, cloud_paper.png. --reference=paper adds the paper's
published o.o.d. means to the tables and figures of the datasets it has.
Soups are evaluated once and cached under <input_dir>/soups.
"""

import os
import sys
import warnings

from host_memory import reuse_freed_memory
from quiet_start import start_tensorflow
from tensorflow_kernels import use_onednn_kernels

reuse_freed_memory()
use_onednn_kernels()
start_tensorflow()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_ldrop.assets import MissingAssetError  # noqa: E402
from keras_ldrop.data import DatasetNotFoundError  # noqa: E402
from keras_ldrop.experiments import clouds, collect, figures, reference, tables  # noqa: E402
from keras_ldrop.experiments.selection import PAPER, SELECTIONS, check_selection  # noqa: E402

flags.DEFINE_string("input_dir", None, "Folder searched for run folders (results.jsonl + done); required.")
# Also a flag of the other apps; `allow_override` lets one process (the tests) load them all.
flags.DEFINE_string("output_dir", None, "Where the tables and figures go. Default: --input_dir.", allow_override=True)
# Strings, not enums, so that a wrong value ends with one line like every other mistake.
flags.DEFINE_string("selection", "training_domain", f"The estimator, one of {', '.join(SELECTIONS)}: DomainBed's selections of one hyperparameter setting per trial (training-domain validation, oracle: test-domain validation at the last checkpoint, last checkpoint), or paper: each run's checkpoint by training-domain validation, then the mean over every hyperparameter setting (the paper's figures; also writes the cloud figure).")
flags.DEFINE_string("reference", reference.NONE, f"Published results added to the tables and figures, one of {', '.join(reference.REFERENCE_NAMES)}. paper: the paper's o.o.d. means (ResNet-50 V2) for vlcs, pacs, office_home and terra_incognita, as rows 'paper: fine-tuning' at rate 0 (plain fine-tuning) and 0.9 (90% dropout), to compare with ours under --selection=paper.")
flags.DEFINE_boolean("soups", True, "Evaluate the uniform soups and ensembles of final models (loads final.keras; cached).")
FLAGS = flags.FLAGS


def write_outputs(summaries, selection, output_dir, reference_name=reference.NONE, cloud_list=()):
    """Writes the Markdown and LaTeX tables and the figures; returns their paths.

    The cloud figure is written with the paper's estimator only.
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = {
        "markdown": os.path.join(output_dir, f"results_{selection}.md"),
        "latex": os.path.join(output_dir, f"results_{selection}.tex"),
        "iid_vs_ood": os.path.join(output_dir, f"iid_vs_ood_{selection}.png"),
        "ood_vs_rate": os.path.join(output_dir, f"ood_vs_rate_{selection}.png"),
    }
    for style in ("markdown", "latex"):
        with open(paths[style], "w") as file:
            file.write(tables.render(summaries, selection, style, reference_name))
    figures.plot_iid_vs_ood(summaries, paths["iid_vs_ood"], selection, reference_name)
    figures.plot_ood_vs_rate(summaries, paths["ood_vs_rate"], selection, reference_name)
    if selection == PAPER:
        paths["cloud"] = os.path.join(output_dir, f"cloud_{selection}.png")
        figures.plot_cloud(cloud_list, summaries, paths["cloud"], reference_name)
    return paths


def paper_clouds(runs):
    """The clouds of the paper's estimator."""
    with warnings.catch_warnings():
        # `collect_scores` has just given the same warnings about these runs.
        warnings.simplefilter("ignore")
        run_scores = collect.paper_run_scores(runs)
    return clouds.clouds(run_scores)


def reference_coverage(summaries, reference_name):
    """A line naming the datasets without published values, or `None`."""
    uncovered = sorted(
        {s.setting.dataset for s in summaries} - set(reference.datasets(reference_name))
    )
    if reference_name == reference.NONE or not uncovered:
        return None
    return (
        f"--reference={reference_name} has no values for {', '.join(uncovered)} "
        f"(only for {', '.join(reference.datasets(reference_name))})."
    )


def main(argv):
    if len(argv) > 1:
        sys.exit(f"collect_results: error: unexpected arguments {argv[1:]}")
    if not FLAGS.input_dir:
        sys.exit("collect_results: error: give --input_dir, the sweep's folder.")
    try:
        check_selection(FLAGS.selection)
        reference.check_reference(FLAGS.reference)
        runs, unfinished = collect.read_runs(FLAGS.input_dir)
        if not runs:
            raise FileNotFoundError(
                f"No finished run (results.jsonl and done) under {FLAGS.input_dir}."
            )
        cache = os.path.join(FLAGS.input_dir, collect.SOUP_CACHE) if FLAGS.soups else None
        summaries = collect.summarize(collect.collect_scores(runs, FLAGS.selection, cache))
        cloud_list = paper_clouds(runs) if FLAGS.selection == PAPER else ()
    except (FileNotFoundError, ValueError, DatasetNotFoundError, MissingAssetError) as error:
        sys.exit(f"collect_results: error: {' '.join(str(error).split())}")
    print(f"{len(runs)} finished runs read; {len(unfinished)} unfinished left out.")
    print(tables.render(summaries, FLAGS.selection, "text", FLAGS.reference))
    coverage = reference_coverage(summaries, FLAGS.reference)
    if coverage:
        print(coverage)
    output_dir = FLAGS.output_dir or FLAGS.input_dir
    paths = write_outputs(summaries, FLAGS.selection, output_dir, FLAGS.reference, cloud_list)
    for name, path in paths.items():
        print(f"  {name}: {path}")


if __name__ == "__main__":
    app.run(main)
