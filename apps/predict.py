"""Predict the classes of image files with a fine-tuned classifier.

    python apps/predict.py --model=runs/vlcs-0123456789/best.keras \
        --top_k=3 --output=predictions.csv photos/ extra.jpg

Folders are searched recursively for .jpg, .jpeg, .png, .bmp, .gif and .webp
files. Prints, per image in sorted order, the top-k class names with their
probabilities (the softmax of the logits; every class when --top_k exceeds
their number) and writes them to --output (.csv or .json, by its extension).
Files that are not readable images are listed on stderr and skipped.
"""

import sys

from host_memory import reuse_freed_memory
from quiet_start import start_tensorflow
from tensorflow_kernels import use_onednn_kernels

reuse_freed_memory()
use_onednn_kernels()
start_tensorflow()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_ldrop.inference.predict import format_table, predict_images  # noqa: E402

# `allow_override`: other apps define --model, --output and --batch_size too, and
# one process (the tests) may load them all, or this app more than once.
flags.DEFINE_string("model", None, "The .keras classifier (e.g. a run's best.keras); required.", allow_override=True)
flags.DEFINE_string("output", None, "File receiving the predictions: .csv or .json. Default: none (terminal only).", allow_override=True)
flags.DEFINE_integer("batch_size", 32, "Images per batch.", allow_override=True)
flags.DEFINE_integer("top_k", 3, "Classes kept per image, most probable first (all of them when the model has fewer).", allow_override=True)
FLAGS = flags.FLAGS


def main(argv):
    if not FLAGS.model:
        sys.exit("predict: error: give --model, a .keras classifier.")
    if len(argv) < 2:
        sys.exit("predict: error: give image files or folders after the flags.")
    try:
        predictions = predict_images(
            FLAGS.model, argv[1:], top_k=FLAGS.top_k, output=FLAGS.output,
            batch_size=FLAGS.batch_size, progress=True,
        )
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"predict: error: {' '.join(str(error).split())}")
    print(format_table(predictions, FLAGS.top_k))
    if predictions.skipped:
        print(f"Skipped {len(predictions.skipped)} unreadable files:", file=sys.stderr)
        for path, reason in predictions.skipped:
            print(f"  {path}: {reason}", file=sys.stderr)
    if FLAGS.output:
        print(f"Wrote {len(predictions.paths)} predictions to {FLAGS.output}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
