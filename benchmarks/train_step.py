"""Times full fine-tuning steps of our classifier on the current KERAS_BACKEND.

Prints one JSON line: images_per_second, seconds_per_step (median of the timed
steps), the peak memory, the backend and the settings. The default model is the
paper's: ResNet-50 (random weights), `build_classifier` with 90% dropout and
frozen BatchNorm statistics, our reference SGD with coupled weight decay.

  KERAS_BACKEND=jax python benchmarks/train_step.py --image_size=112 --batch_size=32 --domains=3 --steps=5

Compare with `torch_reference_step.py`, the same step the authors' way.
"""

import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

_IMAGE_SIZE = flags.DEFINE_integer("image_size", 112, "Side of the square images.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per domain per step.")
_DOMAINS = flags.DEFINE_integer("domains", 3, "Training domains per step.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first (compilation).")
_BACKBONE = flags.DEFINE_string("backbone", None, "Anything build_classifier accepts; default a random ResNet-50.")
_PRECISION = flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"], "Keras dtype policy.")
_JIT = flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "Keras compile(jit_compile=...).")
_RATE = flags.DEFINE_float("rate", 0.9, "Dropout rate.")
_CLASSES = flags.DEFINE_integer("num_classes", 7, "Classes of the head.")


def device_peak_bytes(keras):
    """Peak accelerator memory where the backend reports it, else None."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use")
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"]


def main(argv):
    del argv
    import keras

    from benchmarks.resnet50_architecture import keras_resnet50
    from keras_ldrop import build_classifier
    from keras_ldrop.optimizers import SGD

    keras.config.set_dtype_policy(_PRECISION.value)
    keras.utils.set_random_seed(0)
    backbone = _BACKBONE.value or keras_resnet50()
    model = build_classifier(backbone, _CLASSES.value, rate=_RATE.value, normalization="imagenet")
    jit = {"auto": "auto", "true": True, "false": False}[_JIT.value]
    model.compile(
        optimizer=SGD(1e-3, momentum=0.9, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    images = _BATCH_SIZE.value * _DOMAINS.value
    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(
        rng.uniform(0, 255, (images, _IMAGE_SIZE.value, _IMAGE_SIZE.value, 3)).astype("float32")
    )
    y = keras.ops.convert_to_tensor(rng.integers(0, _CLASSES.value, images).astype("int32"))
    for _ in range(_WARMUP.value):
        model.train_on_batch(x, y)
    times = []
    for _ in range(_STEPS.value):
        start = time.perf_counter()
        float(model.train_on_batch(x, y))  # the loss comes back to the host: a sync
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(json.dumps({
        "implementation": "keras_ldrop",
        "backend": keras.backend.backend(),
        "images_per_second": images / seconds,
        "seconds_per_step": seconds,
        "step_seconds": times,
        "peak_host_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_device_memory_bytes": device_peak_bytes(keras),
        "settings": {
            "image_size": _IMAGE_SIZE.value, "batch_size": _BATCH_SIZE.value,
            "domains": _DOMAINS.value, "steps": _STEPS.value, "warmup": _WARMUP.value,
            "backbone": _BACKBONE.value or "resnet50 (random)", "precision": _PRECISION.value,
            "jit_compile": _JIT.value, "rate": _RATE.value,
        },
    }))


if __name__ == "__main__":
    app.run(main)
