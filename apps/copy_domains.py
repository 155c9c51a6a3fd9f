"""Copy domains of a registered dataset into a folder laid out as your own data.

    python apps/copy_domains.py --dataset=vlcs_mini --domains=caltech,labelme --output_dir=my_domains
    python apps/copy_domains.py --dataset=vlcs_mini --domains=sun --output_dir=new_site

Writes `<output_dir>/<domain>/<class>/<image>` with class folders named by
their class, the layout `apps/finetune.py --dataset=PATH` and
`apps/evaluate.py --data_dir=PATH` read. Offline, the VLCS and PACS minis give
real images with a real domain shift to try the whole loop on.
"""

import os
import sys

from quiet_start import start_tensorflow

start_tensorflow()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_ldrop.data import DatasetNotFoundError  # noqa: E402
from keras_ldrop.data.copy_domains import copy_domains  # noqa: E402

_DATASET = flags.DEFINE_string("dataset", "vlcs_mini", "Registry name of an image-folder dataset.", allow_override=True)
_DOMAINS = flags.DEFINE_list("domains", None, "Domains to copy (comma-separated). Default: all.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "The folder that receives <domain>/<class>/<image>; required.", allow_override=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where a downloaded dataset lives (not needed for the minis).", allow_override=True)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"copy_domains: error: unexpected arguments {argv[1:]}")
    if not _OUTPUT_DIR.value:
        sys.exit("copy_domains: error: give --output_dir, the folder to write.")
    try:
        root = copy_domains(
            _DATASET.value, _OUTPUT_DIR.value, _DOMAINS.value, _DATA_DIR.value
        )
    except (ValueError, DatasetNotFoundError) as error:
        sys.exit(f"copy_domains: error: {' '.join(str(error).split())}")
    for domain in sorted(path for path in root.iterdir() if path.is_dir()):
        counts = {c.name: len(os.listdir(c)) for c in sorted(domain.iterdir())}
        print(f"{domain}: {sum(counts.values())} images "
              + ", ".join(f"{name} {count}" for name, count in counts.items()))


if __name__ == "__main__":
    app.run(main)
