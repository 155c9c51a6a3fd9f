"""Times reading file bytes from prepared shards vs from the files; prints one JSON line.

The tf.data stream of a prepared dataset reads each batch's bytes through
`RecordSource.read` (a `tf.numpy_function` around TFDS's ArrayRecord data
source, then `tf.io.parse_example`); the folder stream reads them with
`tf.io.read_file`. Both are timed here on the same random rows, in batches,
without decoding, after one warm-up pass (so the page cache holds the data):

  python apps/prepare.py --dataset=pacs --data_dir=/tmp/bench --tfds_dir=/tmp/tfds
  python benchmarks/record_reads.py --dataset=pacs --data_dir=/tmp/bench --tfds_dir=/tmp/tfds
"""

import json
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from keras_ldrop.data.prepared import load_prepared_domains
from keras_ldrop.data.registry import get_dataset

_DATASET = flags.DEFINE_string("dataset", "pacs", "Registry name of the prepared dataset.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder holding the dataset's folder.")
_TFDS_DIR = flags.DEFINE_string("tfds_dir", None, "The prepared shards' TFDS data dir.")
_BATCH = flags.DEFINE_integer("batch", 48, "Rows read per call.")
_BATCHES = flags.DEFINE_integer("batches", 200, "Calls timed.")


def _per_file_ms(read, batches):
    read(batches[0])
    for batch in batches:
        read(batch)
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        read(batch)
    files = sum(len(batch) for batch in batches)
    return (
        round(1000 * (time.perf_counter() - started) / files, 4),
        round(1000 * (time.process_time() - cpu) / files, 4),
    )


def main(argv):
    del argv
    domains = load_prepared_domains(_DATASET.value, _TFDS_DIR.value)
    source = domains[0].records
    root = f"{_DATA_DIR.value}/{get_dataset(_DATASET.value).folder}"
    paths = tf.constant([f"{root}/{path}" for domain in domains for path in domain.paths])
    rng = np.random.default_rng(0)
    batches = [
        tf.constant(rng.integers(0, len(source), _BATCH.value)) for _ in range(_BATCHES.value)
    ]
    from_records = tf.function(source.read)

    @tf.function
    def from_files(rows):
        return tf.map_fn(tf.io.read_file, tf.gather(paths, rows), fn_output_signature=tf.string)

    records_ms, records_cpu_ms = _per_file_ms(from_records, batches)
    files_ms, files_cpu_ms = _per_file_ms(from_files, batches)
    print(json.dumps({
        "dataset": _DATASET.value, "files": len(source), "batch": _BATCH.value,
        "records_ms_per_file": records_ms, "records_cpu_ms_per_file": records_cpu_ms,
        "files_ms_per_file": files_ms, "files_cpu_ms_per_file": files_cpu_ms,
    }))


if __name__ == "__main__":
    flags.mark_flags_as_required(["data_dir", "tfds_dir"])
    app.run(main)
