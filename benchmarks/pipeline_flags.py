"""The flags shared by the two pipeline benchmarks, so that both measure the same work."""

import os

from absl import flags

DATASET = flags.DEFINE_string("dataset", "pacs", "Registry name of the dataset.")
DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder holding the dataset folder.")
IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Side of the output images.")
SECONDS = flags.DEFINE_float("seconds", 30.0, "Seconds to measure, after warm-up.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per training domain per step.")
TEST_ENV = flags.DEFINE_integer("test_env", 0, "Index of the held-out domain.")
WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 5, "Steps read before measuring.")
CORES = flags.DEFINE_integer(
    "cores", os.cpu_count(), "Cores to use: pipeline threads, or worker processes."
)
