"""Fine-tuning with the paper's protocol: configuration, loop, records.

Example:

>>> from keras_ldrop.training import FinetuneConfig
>>> FinetuneConfig(dataset="pacs_mini", rate=0.9).resolve().test_envs
(0,)
"""

from keras_ldrop.training.config import ConfigError, FinetuneConfig
from keras_ldrop.training.loop import train_and_evaluate
from keras_ldrop.training.preemption import PREEMPTED_EXIT_CODE, Preempted
from keras_ldrop.training.records import OutputFolderError

__all__ = [
    "ConfigError",
    "FinetuneConfig",
    "OutputFolderError",
    "PREEMPTED_EXIT_CODE",
    "Preempted",
    "train_and_evaluate",
]
