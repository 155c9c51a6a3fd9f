"""Why the EfficientNet demo crawls under JAX on CPU: XLA's depthwise convolution.

For depthwise convolutions of EfficientNet-Lite0's shapes (64 images at
96 px), times the forward pass with both gradients as `keras.ops.depthwise_conv`
runs it (XLA's grouped convolution) and written as a sum of shifted,
channel-wise products (`jax.numpy`, differentiated by JAX), and prints the
largest relative difference of the kernel gradients. One JSON line per shape.

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


def shifted_depthwise(inputs, kernel, stride):
    """`depthwise_conv(inputs, kernel, stride, "same")` as `size**2` shifted products (NHWC)."""
    import jax.numpy as jnp
    from jax import lax

    batch, height, width, channels = inputs.shape
    size = kernel.shape[0]
    out_height, out_width = -(-height // stride), -(-width // stride)
    pad_h = max((out_height - 1) * stride + size - height, 0)
    pad_w = max((out_width - 1) * stride + size - width, 0)
    padded = jnp.pad(
        inputs, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    )
    outputs = 0.0
    for row in range(size):
        for column in range(size):
            window = lax.slice(
                padded, (0, row, column, 0),
                (batch, row + (out_height - 1) * stride + 1,
                 column + (out_width - 1) * stride + 1, channels),
                (1, stride, stride, 1),
            )
            outputs = outputs + window * kernel[row, column, :, 0]
    return outputs


def main(argv):
    del argv
    import keras

    jax_timing.require_jax("depthwise_conv")
    import jax
    import numpy as np

    ways = {
        "xla": lambda x, w, s: keras.ops.depthwise_conv(x, w, s, "same"),
        "shifted": shifted_depthwise,
    }
    rng = np.random.default_rng(0)
    for side, channels, size, stride in SHAPES:
        inputs = rng.normal(size=(_BATCH.value, side, side, channels)).astype("float32")
        kernel = rng.normal(size=(size, size, channels, 1)).astype("float32")
        row = {"shape": f"{side}x{side}x{channels}, {size}x{size}/{stride}"}
        kernel_gradients = {}
        for way, convolve in ways.items():
            step = jax.jit(jax.value_and_grad(
                lambda x, w, s=stride, f=convolve: (f(x, w, s) ** 2).sum(), (0, 1)
            ))
            row[f"{way}_with_gradients_ms"] = round(1000 * jax_timing.median_seconds(step, inputs, kernel), 1)
            kernel_gradients[way] = np.asarray(step(inputs, kernel)[1][1])
        difference = np.abs(kernel_gradients["xla"] - kernel_gradients["shifted"]).max()
        row["kernel_gradient_relative_difference"] = float(
            difference / np.abs(kernel_gradients["xla"]).max()
        )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    app.run(main)
