"""The tensors one fine-tuning step holds at its peak, torch backend against plain PyTorch.

Host RSS mixes the tensors with what the allocator keeps; this counts only the
tensors: `torch.profiler`'s allocation events over one step (after the warm-up
steps), their running sum's peak, and which operations allocated what is
alive at that peak. Three ways: our classifier on the torch backend with
Keras' functional models keeping every layer's output until the forward pass
ends, the same releasing each after its last use (`functional_memory`, as
fine-tuning runs), and `torch_reference_step.py`'s model. Prints one JSON line
each, then a table.

  KERAS_BACKEND=torch python benchmarks/torch_step_memory.py --image_size=112 --batch_size=16 --domains=3
"""

import collections
import json
import os
import sys

from absl import app, flags

import step_flags

_TOP = flags.DEFINE_integer("top", 5, "Allocating operations to list per way.", lower_bound=0)


def peak_tensor_memory(step):
    """`(peak bytes, {operation chain: bytes alive at the peak})` of the tensors `step()` allocates."""
    import torch
    from torch._C._profiler import _EventType

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profile:
        step()
    allocations = []

    def collect(event, callers):
        if event.tag == _EventType.Allocation:
            fields = event.extra_fields
            allocations.append((event.start_time_ns, fields.ptr, fields.alloc_size, " / ".join(callers[-3:])))
            return
        for child in event.children:
            collect(child, callers + [event.name])

    for root in profile.profiler.kineto_results.experimental_event_tree():
        collect(root, [])
    allocations.sort(key=lambda allocation: allocation[0])
    alive, total, peak, alive_at_peak = {}, 0, 0, {}
    for _, pointer, size, callers in allocations:
        if size > 0:
            alive[pointer] = (size, callers)
        else:
            alive.pop(pointer, None)
        total += size
        if total > peak:
            peak, alive_at_peak = total, dict(alive)
    by_caller = collections.Counter()
    for size, callers in alive_at_peak.values():
        by_caller[callers] += size
    return peak, dict(by_caller.most_common(_TOP.value))


def keras_step(release_outputs):
    import keras
    import numpy as np

    from resnet50_architecture import keras_resnet50
    from keras_ldrop import build_classifier
    from keras_ldrop.optimizers import SGD
    from keras_ldrop.training import cpu_convolution, functional_memory

    cpu_convolution.use_where_faster()
    if not release_outputs:
        functional_memory.keep_layer_outputs()
    keras.utils.set_random_seed(0)
    backbone = {
        "resnet50": keras_resnet50,
        "efficientnet_lite0": lambda: "efficientnet_lite0_imagenet_offline",
    }[step_flags.ARCHITECTURE.value]()
    model = build_classifier(backbone, step_flags.NUM_CLASSES.value, rate=step_flags.RATE.value, normalization="imagenet")
    model.compile(
        optimizer=SGD(1e-3, momentum=0.9, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    images = step_flags.BATCH_SIZE.value * step_flags.DOMAINS.value
    x = rng.uniform(0, 255, (images, step_flags.IMAGE_SIZE.value, step_flags.IMAGE_SIZE.value, 3)).astype("float32")
    y = rng.integers(0, step_flags.NUM_CLASSES.value, images).astype("int32")
    return lambda: float(model.train_on_batch(x, y))


def reference_step():
    import torch

    from torch_reference_models import reference_classifier

    torch.manual_seed(0)
    model = reference_classifier(step_flags.ARCHITECTURE.value, step_flags.NUM_CLASSES.value, step_flags.RATE.value).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    images = step_flags.BATCH_SIZE.value * step_flags.DOMAINS.value
    x = torch.rand(images, 3, step_flags.IMAGE_SIZE.value, step_flags.IMAGE_SIZE.value)
    y = torch.randint(0, step_flags.NUM_CLASSES.value, (images,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def main(argv):
    del argv
    import keras

    if keras.backend.backend() != "torch":
        sys.exit(f"torch_step_memory: error: measures the torch backend; KERAS_BACKEND is {keras.backend.backend()!r}")
    rows = []
    for name, make_step in (
        ("keras_ldrop torch, outputs kept", lambda: keras_step(release_outputs=False)),
        ("keras_ldrop torch, outputs released", lambda: keras_step(release_outputs=True)),
        ("pytorch reference", reference_step),
    ):
        step = make_step()
        for _ in range(max(step_flags.WARMUP.value, 1)):
            step()
        peak, by_caller = peak_tensor_memory(step)
        rows.append({"implementation": name, "peak_tensor_bytes": peak, "alive_at_peak_by_caller": by_caller})
        print(json.dumps(rows[-1]), flush=True)
    reference = rows[-1]["peak_tensor_bytes"]
    print(f"\n{'implementation':40} {'peak tensors (GB)':>18} {'vs reference':>13}")
    for row in rows:
        print(f"{row['implementation']:40} {row['peak_tensor_bytes'] / 1e9:18.2f} {row['peak_tensor_bytes'] / reference:13.2f}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
