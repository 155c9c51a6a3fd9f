"""Where a JAX step loses time on CPU: one convolution's forward pass and gradients.

For convolutions of ResNet-50's shapes (96 images at 112 px), times the
forward pass alone and the forward pass with both gradients (inputs and
kernel), with XLA's own convolution and with `cpu_convolution`'s (a 1x1
kernel's forward pass as a matrix product, matrix-product gradients). Prints
one JSON line per shape and method, then a table.

  KERAS_BACKEND=jax python benchmarks/conv_gradients.py --repeats=3
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from absl import app, flags  # noqa: E402

import jax_timing  # noqa: E402

_BATCH = flags.DEFINE_integer("batch", 96, "Images.", lower_bound=1)

# (input side, input channels, output channels, kernel, stride) at 112 px input.
SHAPES = (
    (112, 3, 64, 7, 2),    # stem
    (28, 64, 64, 3, 1),    # stage 1, 3x3
    (28, 256, 64, 1, 1),   # stage 1, 1x1 reduce
    (28, 256, 512, 1, 2),  # stage 2 shortcut
    (28, 128, 128, 3, 2),  # stage 2, strided 3x3
    (14, 512, 128, 1, 1),  # stage 2, 1x1 reduce
)


def main(argv):
    del argv
    import keras

    jax_timing.require_jax("conv_gradients")
    import jax
    import numpy as np

    from keras_ldrop.training import cpu_convolution

    def loss(inputs, kernel, stride):
        outputs = keras.ops.conv(inputs, kernel, stride, "same")
        return (outputs * outputs).sum()

    rows = []
    rng = np.random.default_rng(0)
    for side, cin, cout, size, stride in SHAPES:
        inputs = rng.normal(size=(_BATCH.value, side, side, cin)).astype("float32")
        kernel = rng.normal(size=(size, size, cin, cout)).astype("float32") * 0.05
        row = {"shape": f"{side}x{side}x{cin} -> {cout}, {size}x{size}/{stride}"}
        for method in ("xla", "matmul"):
            if method == "matmul":
                cpu_convolution.use_cpu_convolutions()
            forward = jax.jit(lambda x, w, s=stride: keras.ops.conv(x, w, s, "same"))
            gradients = jax.jit(jax.grad(lambda x, w, s=stride: loss(x, w, s), (0, 1)))
            row[f"{method}_forward_ms"] = 1000 * jax_timing.median_seconds(forward, inputs, kernel)
            row[f"{method}_with_gradients_ms"] = 1000 * jax_timing.median_seconds(gradients, inputs, kernel)
            cpu_convolution.use_xla_convolutions()
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n{'convolution':34} {'XLA':>8} {'ours':>8} {'+grads XLA':>11} {'+grads ours':>12}"
          f"  (ms, median of {jax_timing.REPEATS.value})")
    for row in rows:
        print(f"{row['shape']:34} {row['xla_forward_ms']:8.0f} {row['matmul_forward_ms']:8.0f} "
              f"{row['xla_with_gradients_ms']:11.0f} {row['matmul_with_gradients_ms']:12.0f}")


if __name__ == "__main__":
    app.run(main)
