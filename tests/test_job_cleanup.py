"""Jobs run one after the other in one process leave nothing behind (`job_cleanup`)."""

import gc

import keras
import pytest
import tensorflow as tf
from tensorflow.python.framework import func_graph
from tensorflow.python.ops import script_ops

from keras_ldrop.experiments import launchers
from keras_ldrop.experiments.job_cleanup import custom_gradient_names, released_after_job
from keras_ldrop.experiments.sweep import make_jobs


def what_jobs_leave():
    """Counts of the TensorFlow objects that outlived the jobs run so far."""
    gc.collect()
    live = gc.get_objects()
    return {
        "custom gradients registered": len(custom_gradient_names()),
        "py_function callbacks": script_ops._py_funcs.size(),
        "traced graphs": sum(issubclass(type(o), func_graph.FuncGraph) for o in live),
        "variable handles": sum(
            issubclass(type(o), tf.Tensor) and o.dtype == tf.resource for o in live
        ),
    }


def test_in_process_jobs_release_their_graphs_and_variables(tmp_path, user_tree, tiny_preset_folder):
    first, second = make_jobs(
        tmp_path / "sweep", str(user_tree), rates=[0.9], lrs=[1e-3],
        weight_decays=[1e-4, 1e-5], trials=1, test_envs=[0], steps=2,
        checkpoint_freq=2, image_size=32, batch_size=2, backbone=tiny_preset_folder,
    )
    launcher = launchers.InProcessLauncher(log=lambda line: None)
    # The first job also fills the caches a process keeps (e.g. the traced
    # colour augmentation); each later job must leave nothing of its own.
    assert launcher.launch([first]).finished == [first]
    after_first = what_jobs_leave()
    assert launcher.launch([second]).finished == [second]
    assert what_jobs_leave() == after_first


def test_a_jobs_custom_gradients_are_released_even_when_it_raises():
    @tf.function
    def summed_over_replicas(x):
        return tf.distribute.get_replica_context().all_reduce("SUM", x)

    before = custom_gradient_names()
    with pytest.raises(RuntimeError, match="the job crashed"):
        with released_after_job():
            summed_over_replicas(tf.ones(2))
            assert len(custom_gradient_names() - before) == 1
            raise RuntimeError("the job crashed")
    assert custom_gradient_names() == before
    assert keras.layers.Dense(2).name == "dense"  # a fresh Keras session


def _unchanged(path):
    return path


def test_py_function_wrappers_of_a_job_are_released():
    with released_after_job():
        pass  # what the tests before this one left
    gc.collect()
    before = script_ops._py_funcs.size()
    for _ in range(2):
        with released_after_job():
            tf.data.Dataset.from_tensor_slices(["a", "b"]).map(
                lambda path: tf.py_function(_unchanged, [path], tf.string)
            )
    gc.collect()
    assert script_ops._py_funcs.size() == before
