"""The flags and the output line shared by the two pipeline benchmarks.

Both measure the same work and report it in the same JSON shape.
"""

import json
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


def print_measurement(pipeline, training_domains, images, elapsed, cpu_seconds, **extra):
    """Prints the benchmark's one JSON line.

    Args:
        pipeline: which pipeline was measured.
        training_domains: domains in each training step.
        images: images read while measuring.
        elapsed: wall-clock seconds measured.
        cpu_seconds: CPU seconds of every thread and worker over that time.
        **extra: more fields of the line.
    """
    print(json.dumps({
        "pipeline": pipeline,
        "dataset": DATASET.value,
        "image_size": IMAGE_SIZE.value,
        "batch_size_per_domain": BATCH_SIZE.value,
        "training_domains": training_domains,
        "cores": CORES.value,
        "seconds": round(elapsed, 2),
        "images": images,
        "images_per_second": round(images / elapsed, 1),
        "cpu_ms_per_image": round(1000 * cpu_seconds / images, 2),
        **extra,
    }))
