"""Evaluate fine-tuned classifiers on new domains: accuracy per domain, per class, overall.

    python apps/evaluate.py --model=runs/a/best.keras --model=runs/b/best.keras \
        --data_dir=new_domains --output_dir=evaluation

--data_dir is a folder <domain>/<class>/<image> (one domain or more) or a CSV
manifest (path,label,domain). The data's classes are matched to each model's
by name. Prints each model's accuracy per domain, per class and overall, and
writes <output_dir>/<model label>/{predictions.csv, metrics.json,
confusion_<domain>.png}; the label is the model's folder name and file stem
(runs/a/best.keras -> a-best). With several models it also prints a
comparison table and writes comparison.md and comparison.png.
"""

import os
import sys

from host_memory import reuse_freed_memory
from quiet_start import start_tensorflow
from tensorflow_kernels import use_onednn_kernels

reuse_freed_memory()
use_onednn_kernels()
start_tensorflow()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_ldrop.inference.evaluate import evaluate_models  # noqa: E402
from keras_ldrop.inference.reports import comparison_table, format_metrics  # noqa: E402

# `allow_override`: other apps define these names too, and one process (the
# tests) may load them all, or this app more than once.
flags.DEFINE_multi_string("model", None, "A .keras classifier (e.g. a run's best.keras); repeat to compare several. Required.", allow_override=True)
flags.DEFINE_string("data_dir", None, "Folder <domain>/<class>/<image> or CSV manifest (path,label,domain) to evaluate on; required.", allow_override=True)
flags.DEFINE_string("output_dir", None, "Folder receiving one subfolder per model (and the comparison); required.", allow_override=True)
flags.DEFINE_integer("batch_size", 32, "Images per batch.", allow_override=True)
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        sys.exit(f"evaluate: error: unexpected arguments {argv[1:]}")
    for name, what in (("model", "a .keras classifier"), ("data_dir", "the data"), ("output_dir", "where the reports go")):
        if not FLAGS[name].value:
            sys.exit(f"evaluate: error: give --{name}, {what}.")
    try:
        results = evaluate_models(
            FLAGS.model, FLAGS.data_dir, FLAGS.output_dir,
            batch_size=FLAGS.batch_size, progress=True,
        )
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"evaluate: error: {' '.join(str(error).split())}")
    for result in results:
        print(format_metrics(result.label, result.metrics))
        print(f"  reports: {result.folder}\n")
    if len(results) > 1:
        print(comparison_table(results, "text"))
        print(f"  comparison: {os.path.join(FLAGS.output_dir, 'comparison.md')}, "
              f"{os.path.join(FLAGS.output_dir, 'comparison.png')}")


if __name__ == "__main__":
    app.run(main)
