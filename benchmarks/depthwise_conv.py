"""XLA:CPU's depthwise convolution against `shifted_depthwise` (JAX on CPU).

For depthwise convolutions of EfficientNet-Lite0's shapes (64 images at
96 px), times the forward pass alone and with both gradients, as Keras' own
`depthwise_conv` runs it (XLA's grouped convolution) and as
`keras_ldrop.training.shifted_depthwise` computes it (a sum of shifted,
channel-wise products, differentiated by JAX; what fine-tuning uses on CPU),
and prints the largest relative difference of the kernel gradients. One JSON
line per shape.

  KERAS_BACKEND=jax python benchmarks/depthwise_conv.py --repeats=3
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from absl import app, flags  # noqa: E402

import jax_timing  # noqa: E402

_BATCH = flags.DEFINE_integer("batch", 64, "Images.", lower_bound=1)

# (input side, channels, kernel, stride) at 96 px input.
SHAPES = (
    (48, 32, 3, 1),
    (24, 144, 3, 2),
    (12, 240, 5, 2),
    (6, 672, 5, 1),
)


def main(argv):
    del argv
    import keras

    jax_timing.require_jax("depthwise_conv")
    import jax
    import numpy as np
    from jax import lax

    from keras_ldrop.training import shifted_depthwise

    def shifted(inputs, kernel, stride):
        pads = lax.padtype_to_pads(inputs.shape[1:3], kernel.shape[:2], (stride, stride), "SAME")
        return shifted_depthwise.depthwise_conv(inputs, kernel, (stride, stride), tuple(pads))

    ways = {
        "xla": lambda x, w, s: keras.ops.depthwise_conv(x, w, s, "same"),
        "shifted": shifted,
    }
    rng = np.random.default_rng(0)
    for side, channels, size, stride in SHAPES:
        inputs = rng.normal(size=(_BATCH.value, side, side, channels)).astype("float32")
        kernel = rng.normal(size=(size, size, channels, 1)).astype("float32")
        row = {"shape": f"{side}x{side}x{channels}, {size}x{size}/{stride}"}
        kernel_gradients = {}
        for way, convolve in ways.items():
            forward = jax.jit(lambda x, w, s=stride, f=convolve: f(x, w, s))
            step = jax.jit(jax.value_and_grad(
                lambda x, w, s=stride, f=convolve: (f(x, w, s) ** 2).sum(), (0, 1)
            ))
            row[f"{way}_forward_ms"] = round(1000 * jax_timing.median_seconds(forward, inputs, kernel), 1)
            row[f"{way}_with_gradients_ms"] = round(1000 * jax_timing.median_seconds(step, inputs, kernel), 1)
            kernel_gradients[way] = np.asarray(step(inputs, kernel)[1][1])
        difference = np.abs(kernel_gradients["xla"] - kernel_gradients["shifted"]).max()
        row["kernel_gradient_relative_difference"] = float(
            difference / np.abs(kernel_gradients["xla"]).max()
        )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    app.run(main)
