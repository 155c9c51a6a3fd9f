"""The flags shared by the two fine-tuning step benchmarks, so that both time the same step."""

from absl import flags

IMAGE_SIZE = flags.DEFINE_integer("image_size", 112, "Side of the square images.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per domain per step.")
DOMAINS = flags.DEFINE_integer("domains", 3, "Training domains per step.")
STEPS = flags.DEFINE_integer("steps", 5, "Timed steps.")
WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first (compilation, allocation).")
PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
    "Compute precision (a Keras dtype policy; autocast in PyTorch).",
)
RATE = flags.DEFINE_float("rate", 0.9, "Dropout rate.")
NUM_CLASSES = flags.DEFINE_integer("num_classes", 7, "Classes of the head.")
