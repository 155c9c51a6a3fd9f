"""keras_ldrop: fine-tuning pretrained vision backbones with very large dropout.

The Keras 3 implementation of *Fine-tuning with Very Large Dropout*
(Zhang & Bottou, arXiv:2403.00946), on TensorFlow, JAX and PyTorch.

Example:

>>> import keras_ldrop
>>> layer = keras_ldrop.LargeDropout(rate=0.9)
>>> optimizer = keras_ldrop.optimizers.SGD(1e-3, weight_decay=1e-4)
"""

from keras_ldrop import optimizers
from keras_ldrop.layers import LargeDropout
from keras_ldrop.model_card import read_model_card
from keras_ldrop.models import build_classifier
from keras_ldrop.offline_presets import efficientnet_lite0_preset

__version__ = "0.1.0"
__all__ = [
    "LargeDropout",
    "build_classifier",
    "efficientnet_lite0_preset",
    "optimizers",
    "read_model_card",
]
