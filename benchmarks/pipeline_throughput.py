"""Measures the images per second of our tf.data training stream; prints one JSON line.

The line also gives the CPU time spent per image (all threads), which other
processes on a shared machine disturb less than the rate.

The stream is the one training reads: leave-one-domain-out (`--test_env`),
in splits (80%), `--batch_size` images from each training domain per step,
DomainBed's augmentation at `--image_size`. Compare with
`pil_reference_pipeline.py`, which does the same work DomainBed's way, on
the same tree and the same cores:

  python benchmarks/pipeline_throughput.py --data_dir=/tmp/bench --write_sample_tree
  python benchmarks/pil_reference_pipeline.py --data_dir=/tmp/bench
"""

import time

from absl import app, flags

from keras_ldrop.data import load_domains, split_in_out, training_dataset
from keras_ldrop.data.sample_tree import write_sample_tree
import pipeline_flags

_WRITE_SAMPLE_TREE = flags.DEFINE_bool(
    "write_sample_tree", False, "First write a PACS tree from the mini PACS (pacs only)."
)
_SAMPLE_SHAPE = flags.DEFINE_list(
    "sample_shape", ["480", "640"], "Height,width of the sample tree's images."
)
_SAMPLE_PER_CLASS = flags.DEFINE_integer(
    "sample_per_class", 20, "Images per domain and class in the sample tree."
)


def main(argv):
    del argv
    if _WRITE_SAMPLE_TREE.value:
        write_sample_tree(
            pipeline_flags.DATA_DIR.value,
            image_shape=tuple(int(side) for side in _SAMPLE_SHAPE.value),
            images_per_class=_SAMPLE_PER_CLASS.value,
        )
    domains = load_domains(pipeline_flags.DATASET.value, pipeline_flags.DATA_DIR.value)
    train = [
        split_in_out(domain, 0.2, trial_seed=0, domain_index=i)[0]
        for i, domain in enumerate(domains)
        if i != pipeline_flags.TEST_ENV.value
    ]
    stream = iter(
        training_dataset(
            train,
            pipeline_flags.BATCH_SIZE.value,
            pipeline_flags.IMAGE_SIZE.value,
            seed=0,
            num_threads=pipeline_flags.CORES.value,
        )
    )
    for _ in range(pipeline_flags.WARMUP_STEPS.value):
        next(stream)
    images = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < pipeline_flags.SECONDS.value:
        batch, _ = next(stream)
        images += int(batch.shape[0])
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    pipeline_flags.print_measurement("keras_ldrop tf.data", len(train), images, elapsed, cpu)


if __name__ == "__main__":
    flags.mark_flag_as_required("data_dir")
    app.run(main)
