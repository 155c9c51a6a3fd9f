"""Fine-tuning with the paper's protocol: configuration, loop, records.

Example:

>>> from keras_ldrop.training import FinetuneConfig
>>> FinetuneConfig(dataset="pacs_mini", rate=0.9).resolve().test_envs
(0,)
"""

from keras_ldrop.training.config import ConfigError, FinetuneConfig
from keras_ldrop.training.loop import train_and_evaluate

__all__ = ["ConfigError", "FinetuneConfig", "train_and_evaluate"]
