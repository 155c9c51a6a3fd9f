"""Export a fine-tuned classifier as a TensorFlow SavedModel or an ONNX file.

    python apps/export.py --model=runs/vlcs-0123456789/best.keras \
        --format=onnx --output=vlcs.onnx

The artefact takes `pixels`, float32 RGB in [0, 255], channels last,
`(batch, H, W, 3)`, and returns `probabilities` (softmax; `--outputs=logits`
for the logits), `(batch, num_classes)`. It carries the class names and the
model card (ONNX: metadata_props; SavedModel: assets.extra/model_card.json).
Before it is moved into place it is run and compared with the Keras model.
SavedModel export works under the TensorFlow and JAX backends, ONNX under
TensorFlow and torch; any backend loads the .keras file.
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

from keras_ldrop.inference.classify import load_classifier  # noqa: E402
from keras_ldrop.inference.export import (  # noqa: E402
    CARD_FILE,
    FORMATS,
    OUTPUTS,
    ExportError,
    export_classifier,
)

# Shared with other apps; `allow_override` lets one process (the tests) load them all.
flags.DEFINE_string("model", None, "The .keras classifier (e.g. a run's best.keras); required.", allow_override=True)
flags.DEFINE_string("output", None, "The SavedModel folder or ONNX file to write; required.", allow_override=True)
flags.DEFINE_boolean("overwrite", False, "Replace an existing --output.", allow_override=True)
# Strings, not enums, so that a wrong value ends with one line like every other mistake.
flags.DEFINE_string("format", "saved_model", f"Artefact format: one of {', '.join(FORMATS)}.", allow_override=True)
flags.DEFINE_string("outputs", "probabilities", f"What the artefact returns: one of {', '.join(OUTPUTS)}.")
FLAGS = flags.FLAGS


def describe(exported):
    """The lines printed after a successful export."""
    _, height, width, channels = exported.input_shape
    where = os.path.join(exported.path, CARD_FILE) if exported.format == "saved_model" else "metadata_props"
    return "\n".join([
        f"Wrote {exported.format}: {exported.path}",
        f"  input:  pixels float32 (batch, {height}, {width}, {channels}), RGB in [0, 255]",
        f"  output: {exported.outputs} float32 (batch, {len(exported.class_names)})",
        f"  class names: {len(exported.class_names)} (in {where})",
        f"  checked on {exported.checked_images} images: max |artefact - Keras| = {exported.max_difference:.3g}",
    ])


def main(argv):
    if len(argv) > 1:
        sys.exit(f"export: error: unexpected arguments {argv[1:]}")
    try:
        if not FLAGS.model or not FLAGS.output:
            raise ValueError("give --model, a .keras classifier, and --output, the artefact's path.")
        if FLAGS.format not in FORMATS:
            raise ValueError(f"--format must be one of {', '.join(FORMATS)}; received {FLAGS.format!r}.")
        if FLAGS.outputs not in OUTPUTS:
            raise ValueError(f"--outputs must be one of {', '.join(OUTPUTS)}; received {FLAGS.outputs!r}.")
        if os.path.lexists(FLAGS.output) and not FLAGS.overwrite:
            raise FileExistsError(f"{FLAGS.output} exists; pass --overwrite to replace it.")
        model, _ = load_classifier(FLAGS.model)
        exported = export_classifier(
            model, FLAGS.output, format=FLAGS.format, outputs=FLAGS.outputs, overwrite=FLAGS.overwrite
        )
    except (ValueError, FileNotFoundError, FileExistsError, ExportError) as error:
        sys.exit(f"export: error: {' '.join(str(error).split())}")
    print(describe(exported))


if __name__ == "__main__":
    app.run(main)
