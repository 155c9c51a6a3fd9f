"""DomainBed datasets: registry, reader, seeded splits, tf.data pipelines, downloads.

Images leave the pipelines as float32 RGB, channels last, values in [0, 255],
not normalised: the model applies its backbone's own input scaling.

Example:

>>> from keras_ldrop import data
>>> spec = data.get_dataset("pacs_mini")
>>> domains = data.load_domains("pacs_mini")
>>> splits = [data.split_in_out(d, 0.2, trial_seed=0, domain_index=i)
...           for i, d in enumerate(domains)]
>>> train = [in_split for i, (in_split, _) in enumerate(splits) if i != 0]
>>> stream = data.training_dataset(train, batch_size=32, image_size=224, seed=0)
>>> test = data.evaluation_dataset(splits[0][0], image_size=224)

A user's own folder of domains (`PATH/<domain>/<class>/<image>`) or CSV
manifest works the same way: `data.load_domains("/path/to/my_domains")`.
"""

from keras_ldrop.data.download import DownloadError, Source, download_dataset
from keras_ldrop.data.examples import DomainExamples
from keras_ldrop.data.pipelines import evaluation_dataset, evaluation_pass, training_dataset
from keras_ldrop.data.reader import (
    DatasetNotFoundError,
    SkippedFilesWarning,
    load_domains,
)
from keras_ldrop.data.registry import DATASETS, DatasetSpec, get_dataset
from keras_ldrop.data.safe_decode import UndecodableImageWarning
from keras_ldrop.data.splits import seed_hash, split_in_out
from keras_ldrop.data.user_data import (
    DatasetLayoutError,
    resolve_dataset,
    user_dataset,
)

__all__ = [
    "DATASETS",
    "DatasetLayoutError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "DomainExamples",
    "DownloadError",
    "SkippedFilesWarning",
    "Source",
    "UndecodableImageWarning",
    "download_dataset",
    "evaluation_dataset",
    "evaluation_pass",
    "get_dataset",
    "load_domains",
    "resolve_dataset",
    "seed_hash",
    "split_in_out",
    "training_dataset",
    "user_dataset",
]
