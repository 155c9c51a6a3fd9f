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

`--data_source=tfds --tfds_dir=DIR` reads the shards `apps/prepare.py` wrote
instead of the files. `--process_count=N --process_index=I` measures one
process of an N-process run (start the N at once, `--cores` each): with
`--decode=share` it reads and decodes only its rows of each global batch, as
the run does now; with `--decode=whole` it builds the whole global batch and
keeps its rows, as Keras' own sharding of the stream did. `images_per_second`
counts global-batch images (the run's speed is that of its slowest process);
`load_seconds` is the time to list the examples (the folder's scan and
per-file check, or the prepared metadata).
"""

import time

from absl import app, flags

from keras_ldrop.data import load_domains, split_in_out, training_dataset
from keras_ldrop.data.prepared import load_prepared_domains
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
_DATA_SOURCE = flags.DEFINE_enum("data_source", "folder", ["folder", "tfds"], "Read the files, or the prepared shards.")
_TFDS_DIR = flags.DEFINE_string("tfds_dir", None, "The prepared shards' TFDS data dir.")
_PROCESS_COUNT = flags.DEFINE_integer("process_count", 1, "Processes of the simulated run.")
_PROCESS_INDEX = flags.DEFINE_integer("process_index", 0, "This process's index.")
_DECODE = flags.DEFINE_enum("decode", "share", ["share", "whole"], "Decode only this process's rows, or the whole global batch.")


def main(argv):
    del argv
    if _WRITE_SAMPLE_TREE.value:
        write_sample_tree(
            pipeline_flags.DATA_DIR.value,
            image_shape=tuple(int(side) for side in _SAMPLE_SHAPE.value),
            images_per_class=_SAMPLE_PER_CLASS.value,
        )
    load_started = time.perf_counter()
    if _DATA_SOURCE.value == "tfds":
        domains = load_prepared_domains(pipeline_flags.DATASET.value, _TFDS_DIR.value)
    else:
        domains = load_domains(pipeline_flags.DATASET.value, pipeline_flags.DATA_DIR.value)
    load_seconds = time.perf_counter() - load_started
    train = [
        split_in_out(domain, 0.2, trial_seed=0, domain_index=i)[0]
        for i, domain in enumerate(domains)
        if i != pipeline_flags.TEST_ENV.value
    ]
    share = _DECODE.value == "share"
    stream = iter(
        training_dataset(
            train,
            pipeline_flags.BATCH_SIZE.value,
            pipeline_flags.IMAGE_SIZE.value,
            seed=0,
            num_threads=pipeline_flags.CORES.value,
            process_index=_PROCESS_INDEX.value if share else 0,
            process_count=_PROCESS_COUNT.value if share else 1,
        )
    )
    global_batch = pipeline_flags.BATCH_SIZE.value * len(train)
    for _ in range(pipeline_flags.WARMUP_STEPS.value):
        next(stream)
    images = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < pipeline_flags.SECONDS.value:
        next(stream)
        images += global_batch
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    pipeline_flags.print_measurement(
        f"keras_ldrop tf.data, {_DATA_SOURCE.value}, process {_PROCESS_INDEX.value} of "
        f"{_PROCESS_COUNT.value}, decode {_DECODE.value}",
        len(train), images, elapsed, cpu, load_seconds=round(load_seconds, 2),
    )


if __name__ == "__main__":
    flags.mark_flag_as_required("data_dir")
    app.run(main)
