"""Times full fine-tuning steps of our classifier on the current KERAS_BACKEND.

Prints one JSON line: images_per_second, seconds_per_step (median of the timed
steps), the peak memory, the backend and the settings. The default model is the
paper's: ResNet-50 (random weights), `build_classifier` with 90% dropout and
frozen BatchNorm statistics, our reference SGD with coupled weight decay;
`--architecture=efficientnet_lite0` times the offline demo's backbone instead.

  KERAS_BACKEND=jax python benchmarks/train_step.py --image_size=112 --batch_size=32 --domains=3 --steps=5

Compare with `torch_reference_step.py`, the same step the authors' way.
"""

import json
import os
import resource
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the apps do: apps/tensorflow_kernels.py

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

import cpu_info  # noqa: E402
import step_flags  # noqa: E402

_BACKBONE = flags.DEFINE_string("backbone", None, "Anything build_classifier accepts; default: --architecture's.")
_JIT = flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "Keras compile(jit_compile=...).")
_CONV_GRADIENTS = flags.DEFINE_enum(
    "conv_gradients", "auto", ["auto", "xla"],
    "auto: the faster convolutions where they help (JAX on CPU: matrix-product "
    "gradients, shifted-product depthwise; torch: no layout copies, one-kernel frozen "
    "BatchNorm, outputs released, multi-tensor SGD, channels-last kernels; "
    "cpu_convolution.use_where_faster()), "
    "as fine-tuning does; xla: Keras' own.",
)


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

    from resnet50_architecture import keras_resnet50
    from keras_ldrop import build_classifier
    from keras_ldrop.optimizers import SGD
    from keras_ldrop.training import cpu_convolution

    keras.config.set_dtype_policy(step_flags.PRECISION.value)
    cpu_convolutions = _CONV_GRADIENTS.value == "auto" and cpu_convolution.use_where_faster()
    keras.utils.set_random_seed(0)
    backbone = _BACKBONE.value or {
        "resnet50": keras_resnet50,
        "efficientnet_lite0": lambda: "efficientnet_lite0_imagenet_offline",
    }[step_flags.ARCHITECTURE.value]()
    model = build_classifier(backbone, step_flags.NUM_CLASSES.value, rate=step_flags.RATE.value, normalization="imagenet")
    jit = {"auto": "auto", "true": True, "false": False}[_JIT.value]
    model.compile(
        optimizer=SGD(1e-3, momentum=0.9, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    images = step_flags.BATCH_SIZE.value * step_flags.DOMAINS.value
    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(
        rng.uniform(0, 255, (images, step_flags.IMAGE_SIZE.value, step_flags.IMAGE_SIZE.value, 3)).astype("float32")
    )
    y = keras.ops.convert_to_tensor(rng.integers(0, step_flags.NUM_CLASSES.value, images).astype("int32"))
    for _ in range(step_flags.WARMUP.value):
        model.train_on_batch(x, y)
    times = []
    for _ in range(step_flags.STEPS.value):
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
        "cpu": cpu_info.describe(),
        "settings": {
            "image_size": step_flags.IMAGE_SIZE.value, "batch_size": step_flags.BATCH_SIZE.value,
            "domains": step_flags.DOMAINS.value, "steps": step_flags.STEPS.value, "warmup": step_flags.WARMUP.value,
            "backbone": _BACKBONE.value or step_flags.ARCHITECTURE.value, "precision": step_flags.PRECISION.value,
            "jit_compile": _JIT.value, "rate": step_flags.RATE.value,
            "cpu_convolutions": cpu_convolutions,
            "tf_enable_onednn_opts": os.environ["TF_ENABLE_ONEDNN_OPTS"],
        },
    }))


if __name__ == "__main__":
    app.run(main)
