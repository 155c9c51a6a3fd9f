"""Keep TensorFlow, used only for the data pipeline, off the accelerators.

Under the JAX or PyTorch backend, TensorFlow would otherwise reserve most of
every GPU's memory when it first runs; under the TensorFlow backend it grows
its memory as needed instead of taking it all at start.

Example:

>>> from keras_ldrop.data.devices import share_accelerators_with_keras
>>> share_accelerators_with_keras()
"""

from absl import logging
import keras
import tensorflow as tf


def share_accelerators_with_keras():
    """Hides GPUs from TensorFlow unless it is the Keras backend.

    Call before the first TensorFlow operation; later calls change nothing.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return
    try:
        if keras.backend.backend() == "tensorflow":
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
        else:
            tf.config.set_visible_devices([], "GPU")
    except RuntimeError as error:
        logging.warning(
            "TensorFlow had already initialised its GPUs, so they stay as they "
            "are (%s). Call share_accelerators_with_keras() before any "
            "TensorFlow operation.",
            error,
        )
