"""Prepares a dataset once into TFDS ArrayRecord shards, for `--data_source=tfds`.

  python apps/prepare.py --dataset=vlcs_mini --tfds_dir=/data/tfds
  python apps/prepare.py --dataset=domain_net --data_dir=/data/domainbed --tfds_dir=/data/tfds
  python apps/prepare.py --dataset=/data/my_domains --tfds_dir=/data/tfds

Reads the folder with the training reader (same order, same files skipped)
and writes each file's bytes with its label, domain and relative path
(`keras_ldrop.data.prepared`). A dataset already prepared from the same files
is left as it is; one prepared from other files is refused, naming what
changed, unless `--overwrite`. Bad input ends with one line and status 1.
"""

import logging
import sys

from quiet_start import start_tensorflow

start_tensorflow()

from absl import app, flags  # noqa: E402

from keras_ldrop.data import DatasetNotFoundError  # noqa: E402
from keras_ldrop.data.prepared import prepare  # noqa: E402

FLAGS = flags.FLAGS
_DATASET = flags.DEFINE_string("dataset", None, "Registry name (vlcs, pacs, office_home, terra_incognita, domain_net, pacs_mini, vlcs_mini) or your own folder PATH/<domain>/<class>/<image>.")
_TFDS_DIR = flags.DEFINE_string("tfds_dir", None, "The TFDS data dir receiving the shards.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder holding the downloaded registered datasets (apps/download.py).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Prepare again a dataset whose folder changed since it was prepared.")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"prepare: error: unexpected arguments {argv[1:]}")
    logging.getLogger("absl").setLevel(logging.ERROR)
    import tensorflow_datasets as tfds

    tfds.display_progress_bar(False)
    try:
        folder = prepare(
            _DATASET.value, _TFDS_DIR.value, _DATA_DIR.value, overwrite=_OVERWRITE.value
        )
    except (ValueError, DatasetNotFoundError) as error:
        sys.exit(f"prepare: error: {' '.join(str(error).split())}")
    print(f"{_DATASET.value} is prepared in {folder}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["dataset", "tfds_dir"])
    app.run(main)
