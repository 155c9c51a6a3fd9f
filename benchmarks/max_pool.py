"""XLA:CPU's max pooling against `window_max_pool` (JAX on CPU).

For ResNet-50's stem pool (3x3, stride 2, on the padded 64-channel stem
output) at the step benchmarks' shapes, times the forward pass alone and with
the gradient, as `lax.reduce_window` runs it (what Keras' own `max_pool`
calls; JAX differentiates it into a select-and-scatter) and as
`keras_ldrop.training.window_max_pool` computes it (what fine-tuning uses on
CPU), and prints the largest difference of the gradients. The inputs are
rectified, as in the network, so many windows hold their maximum twice. One
JSON line per shape.

  KERAS_BACKEND=jax python benchmarks/max_pool.py --repeats=5
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from absl import app  # noqa: E402

import jax_timing  # noqa: E402

# (images, padded input side) of the stem pool: 96 px / 48 images, 112 px / 96, 224 px / 96.
SHAPES = ((48, 50), (96, 58), (96, 114))
CHANNELS = 64


def main(argv):
    del argv
    jax_timing.require_jax("max_pool")
    import jax
    import numpy as np
    from jax import lax

    from keras_ldrop.training import window_max_pool

    ways = {
        "xla": lambda x: lax.reduce_window(x, -np.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID"),
        "windows": lambda x: window_max_pool.max_pool(x, (3, 3), (2, 2), ((0, 0), (0, 0))),
    }
    rng = np.random.default_rng(0)
    for images, side in SHAPES:
        inputs = np.maximum(rng.normal(size=(images, side, side, CHANNELS)), 0).astype("float32")
        row = {"shape": f"{images} x {side}x{side}x{CHANNELS}, 3x3/2"}
        gradients = {}
        for way, pool in ways.items():
            forward = jax.jit(pool)
            step = jax.jit(jax.value_and_grad(lambda x, f=pool: (f(x) ** 2).sum()))
            row[f"{way}_forward_ms"] = round(1000 * jax_timing.median_seconds(forward, inputs), 1)
            row[f"{way}_with_gradient_ms"] = round(1000 * jax_timing.median_seconds(step, inputs), 1)
            gradients[way] = np.asarray(step(inputs)[1])
        row["gradient_max_difference"] = float(np.abs(gradients["xla"] - gradients["windows"]).max())
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    app.run(main)
