"""Releases what a fine-tuning job leaves in its process, so that jobs can follow each other in it.

`InProcessLauncher` runs a sweep's jobs one after the other in one process.
`keras.backend.clear_session()` resets Keras' own global state, but two
process-wide TensorFlow registries keep growing, and Keras never empties them:

- The gradient registry, under the TensorFlow backend. Keras' TensorFlow
  optimizer sums the gradients over the replicas with
  `tf.distribute.get_replica_context().all_reduce` (with one device too: the
  default strategy has a replica context). Inside the traced training step
  that call wraps the gradients in `tf.custom_gradient`, which in graph mode
  registers a gradient function named `CustomGradient-<uid>` with
  `tf.RegisterGradient`, for good. The function holds the gradients it
  wraps, hence the whole traced step (about 7,500 operations for
  EfficientNet-Lite0) and the handles of the variables it captured: the
  model's weights, momentum buffers and weight average outlive the model
  (about 75 MB a job at 32 px, and each later job slower).
- The Python functions of `tf.py_function`, under the JAX and torch
  backends. A `tf.py_function` in a `tf.data` pipeline is kept alive by
  TensorFlow's global default graph (`_py_funcs_used_in_graph`), which
  `clear_session()` replaces under the TensorFlow backend only.

`released_after_job()` clears the Keras session, replaces TensorFlow's
default graph and unregisters the custom gradients that the job registered.

Example: a traced all-reduce registers a custom gradient, released with
the job.

>>> import tensorflow as tf
>>> from keras_ldrop.experiments.job_cleanup import (
...     custom_gradient_names, released_after_job)
>>> @tf.function
... def summed_over_replicas(x):
...     return tf.distribute.get_replica_context().all_reduce("SUM", x)
>>> before = custom_gradient_names()
>>> with released_after_job():
...     total = summed_over_replicas(tf.ones(2))
...     len(custom_gradient_names() - before)
1
>>> custom_gradient_names() - before
set()
"""

import contextlib

import keras
import tensorflow as tf
from tensorflow.python.framework import ops as tensorflow_ops

CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


def custom_gradient_names():
    """The names of the graph-mode `tf.custom_gradient`s registered so far.

    Returns:
        A set of `"CustomGradient-<uid>"` names.
    """
    return {
        name
        for name in tensorflow_ops.gradient_registry.list()
        if name.startswith(CUSTOM_GRADIENT_PREFIX)
    }


def _unregister_custom_gradients(names):
    registered = tensorflow_ops.gradient_registry._registry
    for name in names:
        registered.pop(name, None)


@contextlib.contextmanager
def released_after_job():
    """Runs a job, then releases the state it left in the process.

    Afterwards, even if the job raised: a fresh Keras session, a fresh
    TensorFlow default graph, and none of the custom gradients that the job
    registered. The job's graphs must not be used any more.
    """
    registered_before = custom_gradient_names()
    try:
        yield
    finally:
        _unregister_custom_gradients(custom_gradient_names() - registered_before)
        tf.compat.v1.reset_default_graph()
        keras.backend.clear_session()
