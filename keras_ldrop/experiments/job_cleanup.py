"""Releases what a fine-tuning job leaves in its process, so that jobs can follow each other in it.

`InProcessLauncher` runs a sweep's jobs one after the other in one process.
`keras.backend.clear_session()` resets Keras' own global state, but
TensorFlow keeps three kinds of process-wide references, which Keras never
drops:

- Custom gradients, under the TensorFlow backend. Keras' TensorFlow
  optimizer sums the gradients over the replicas with
  `tf.distribute.get_replica_context().all_reduce` (with one device too: the
  default strategy has a replica context). Inside the traced training step
  that call wraps the gradients in `tf.custom_gradient`, which in graph mode
  registers a gradient function named `CustomGradient-<uid>` with
  `tf.RegisterGradient`, for good. The function holds the gradients it
  wraps, hence the whole traced step (about 7,500 operations for
  EfficientNet-Lite0) and the handles of the variables it captured: the
  model's weights, momentum buffers and weight average outlive the model
  (about 68 MB and 51,700 Python objects a job at 32 px: BUILD_NOTES.md,
  Faults, `benchmarks/sweep_memory.py`).
- The `tf.py_function`s of the `tf.data` pipelines, under the JAX and torch
  backends: TensorFlow's global default graph keeps them
  (`_py_funcs_used_in_graph`), and `clear_session()` replaces that graph
  under the TensorFlow backend only.
- The wrappers of a function given to `tf.py_function`, under every
  backend: TensorFlow attaches the newest wrapper to the function
  (`ag_dnc_wrapper__`), and each new wrapper copies the attributes of the
  function, that one included: a chain that keeps every wrapper ever made.

`released_after_job()` releases all three, and clears the Keras session.

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
from tensorflow.python.ops import script_ops

CUSTOM_GRADIENT_PREFIX = "CustomGradient-"
# The attribute by which TensorFlow ties a py_function's wrapper to its function.
_PY_FUNCTION_WRAPPER_ATTRIBUTE = "ag_dnc_wrapper__"


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


def _detach_py_function_wrappers():
    """Unties every live `tf.py_function` wrapper from the function it wraps."""
    for registered in list(script_ops._py_funcs._funcs.values()):
        wrapper = getattr(registered, "_func", registered)
        function = getattr(wrapper, "__wrapped__", None)
        if hasattr(function, "__dict__"):
            vars(function).pop(_PY_FUNCTION_WRAPPER_ATTRIBUTE, None)


@contextlib.contextmanager
def released_after_job():
    """Runs a job, then releases the state it left in the process.

    Afterwards, even if the job raised: none of the custom gradients the job
    registered, no py_function wrapper tied to its function, a fresh
    TensorFlow default graph and a fresh Keras session. As after
    `keras.backend.clear_session()` under TensorFlow, the graphs and
    `tf.data` pipelines made before must not be used any more.
    """
    registered_before = custom_gradient_names()
    try:
        yield
    finally:
        _unregister_custom_gradients(custom_gradient_names() - registered_before)
        _detach_py_function_wrappers()
        tf.compat.v1.reset_default_graph()
        keras.backend.clear_session()
