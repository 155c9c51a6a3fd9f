"""The same fine-tuning step done the authors' way, in plain PyTorch.

Torch eager, a torchvision-layout ResNet-50 or a timm-layout EfficientNet-Lite0
(`torch_reference_models.py`), BatchNorm modules in eval mode
(frozen statistics, trainable affine), Dropout + Linear head,
`torch.optim.SGD(momentum=0.9, weight_decay=1e-4)`. Same flags and JSON line as
`train_step.py`.

  python benchmarks/torch_reference_step.py --image_size=112 --batch_size=32 --domains=3 --steps=5
"""

import json
import resource
import statistics
import time

from absl import app
import torch
from torch import nn

import cpu_info
import step_flags
from torch_reference_models import reference_classifier


def main(argv):
    del argv
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = reference_classifier(
        step_flags.ARCHITECTURE.value, step_flags.NUM_CLASSES.value, step_flags.RATE.value
    ).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    images = step_flags.BATCH_SIZE.value * step_flags.DOMAINS.value
    x = torch.rand(images, 3, step_flags.IMAGE_SIZE.value, step_flags.IMAGE_SIZE.value, device=device)
    y = torch.randint(0, step_flags.NUM_CLASSES.value, (images,), device=device)
    dtype = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}.get(step_flags.PRECISION.value)
    scaler = torch.amp.GradScaler(device, enabled=dtype == torch.float16)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach())  # to the host: a sync

    for _ in range(step_flags.WARMUP.value):
        step()
    times = []
    for _ in range(step_flags.STEPS.value):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(json.dumps({
        "implementation": "pytorch_reference",
        "backend": "torch-eager",
        "images_per_second": images / seconds,
        "seconds_per_step": seconds,
        "step_seconds": times,
        "peak_host_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_device_memory_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None,
        "cpu": cpu_info.describe(),
        "settings": {
            "image_size": step_flags.IMAGE_SIZE.value, "batch_size": step_flags.BATCH_SIZE.value,
            "domains": step_flags.DOMAINS.value, "steps": step_flags.STEPS.value, "warmup": step_flags.WARMUP.value,
            "backbone": f"{step_flags.ARCHITECTURE.value} (random)", "precision": step_flags.PRECISION.value, "rate": step_flags.RATE.value,
        },
    }))


if __name__ == "__main__":
    app.run(main)
