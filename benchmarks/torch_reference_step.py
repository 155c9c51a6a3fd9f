"""The same fine-tuning step done the authors' way, in plain PyTorch.

Torch eager, a torchvision-layout ResNet-50 (written out here: torchvision does
not import beside the CPU torch of our machines), BatchNorm modules in eval mode
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

import step_flags



class Bottleneck(nn.Module):
    """torchvision's ResNet-50 block (stride on the 3x3 convolution)."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        width, out = planes, planes * 4
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.relu(self.bn3(self.conv3(x)) + identity)


class ResNet50Classifier(nn.Module):
    """ResNet-50 features -> Dropout(rate) -> Linear, as the authors' DomainBed ERM."""

    def __init__(self, num_classes, rate):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
        )
        layers, inplanes = [], 64
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for index in range(blocks):
                layers.append(Bottleneck(inplanes, planes, stride if index == 0 else 1))
                inplanes = planes * 4
        self.layers = nn.Sequential(*layers)
        self.dropout = nn.Dropout(rate)
        self.head = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        features = self.layers(self.stem(x)).mean(dim=(2, 3))
        return self.head(self.dropout(features))

    def train(self, mode=True):
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()  # the paper's freeze_bn
        return self


def main(argv):
    del argv
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = ResNet50Classifier(step_flags.NUM_CLASSES.value, step_flags.RATE.value).to(device).train()
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
        "settings": {
            "image_size": step_flags.IMAGE_SIZE.value, "batch_size": step_flags.BATCH_SIZE.value,
            "domains": step_flags.DOMAINS.value, "steps": step_flags.STEPS.value, "warmup": step_flags.WARMUP.value,
            "backbone": "resnet50 (random)", "precision": step_flags.PRECISION.value, "rate": step_flags.RATE.value,
        },
    }))


if __name__ == "__main__":
    app.run(main)
