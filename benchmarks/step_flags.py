"""The flags shared by the two fine-tuning step benchmarks, so that both time the same step."""

from absl import flags

ARCHITECTURE = flags.DEFINE_enum(
    "architecture", "resnet50", ["resnet50", "efficientnet_lite0"],
    "The backbone (random ResNet-50; the offline ImageNet EfficientNet-Lite0 in Keras, "
    "random in PyTorch).",
)
IMAGE_SIZE = flags.DEFINE_integer("image_size", 112, "Side of the square images.", lower_bound=1)
BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per domain per step.", lower_bound=1)
DOMAINS = flags.DEFINE_integer("domains", 3, "Training domains per step.", lower_bound=1)
STEPS = flags.DEFINE_integer("steps", 5, "Timed steps.", lower_bound=1)
WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first (compilation; the torch backend's first steps also grow its memory).", lower_bound=0)
PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
    "Compute precision (a Keras dtype policy; autocast in PyTorch).",
)
RATE = flags.DEFINE_float("rate", 0.9, "Dropout rate.")
NUM_CLASSES = flags.DEFINE_integer("num_classes", 7, "Classes of the head.", lower_bound=1)
