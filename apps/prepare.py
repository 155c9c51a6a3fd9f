"""Prepares a dataset once into TFDS ArrayRecord shards, for `--data_source=tfds`.

  python apps/prepare.py --dataset=vlcs_mini --tfds_dir=/data/tfds
  python apps/prepare.py --dataset=domain_net --data_dir=/data/domainbed --tfds_dir=/data/tfds
  python apps/prepare.py --dataset=/data/my_domains --tfds_dir=/data/tfds

Reads the folder with the training reader (same order, same files skipped)
and writes each file's bytes with its label, domain and relative path
(`keras_ldrop.data.prepared`). A dataset already prepared from the same files
is left as it is; one prepared from other files is refused, naming what
changed, unless `--overwrite`. Bad input ends with one line and status 1.
`--dataset`, `--data_dir` and `--tfds_dir` are `apps/finetune.py`'s own flags
(`run_flags`), so the same values name the same data in both apps.
"""

import logging
import sys

from quiet_start import start_tensorflow

start_tensorflow()

from absl import app, flags  # noqa: E402

from run_flags import DATA_DIR, DATASET, TFDS_DIR  # noqa: E402

from keras_ldrop.data import DatasetNotFoundError  # noqa: E402
from keras_ldrop.data.prepared import prepare  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_bool("overwrite", False, "Prepare again a dataset whose folder changed since it was prepared.", allow_override=True)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"prepare: error: unexpected arguments {argv[1:]}")
    logging.getLogger("absl").setLevel(logging.ERROR)
    import tensorflow_datasets as tfds

    tfds.display_progress_bar(False)
    if TFDS_DIR.value is None:
        sys.exit("prepare: error: --tfds_dir is required: the TFDS data dir receiving the shards.")
    try:
        folder = prepare(DATASET.value, TFDS_DIR.value, DATA_DIR.value, overwrite=FLAGS.overwrite)
    except (ValueError, DatasetNotFoundError) as error:
        sys.exit(f"prepare: error: {' '.join(str(error).split())}")
    print(f"{DATASET.value} is prepared in {folder}")


if __name__ == "__main__":
    app.run(main)
