"""The plain-PyTorch models `torch_reference_step.py` times, written out here.

torchvision does not import beside the CPU torch of our machines, so
torchvision's ResNet-50 and timm's EfficientNet-Lite0 layouts are written in
`torch.nn`, with random weights:

>>> model = reference_classifier("efficientnet_lite0", num_classes=7, rate=0.9)
>>> sum(p.numel() for p in model.features.parameters())
3371008
"""

from torch import nn


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


class FrozenBatchNormClassifier(nn.Module):
    """Features -> Dropout(rate) -> Linear, BatchNorm statistics frozen in training."""

    def __init__(self, features, width, num_classes, rate):
        super().__init__()
        self.features = features
        self.dropout = nn.Dropout(rate)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.dropout(self.features(x).mean(dim=(2, 3))))

    def train(self, mode=True):
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()  # the paper's freeze_bn
        return self


def resnet50_features():
    """torchvision's ResNet-50 without its pooling and classifier."""
    layers, inplanes = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
        nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
    ], 64
    for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for index in range(blocks):
            layers.append(Bottleneck(inplanes, planes, stride if index == 0 else 1))
            inplanes = planes * 4
    return nn.Sequential(*layers), inplanes


def _conv_bn(inputs, outputs, size=1, stride=1, groups=1, activation=True):
    layers = [
        nn.Conv2d(inputs, outputs, size, stride, size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(outputs),
    ]
    return layers + [nn.ReLU6(inplace=True)] if activation else layers


class InvertedResidual(nn.Module):
    """EfficientNet-Lite's block: 1x1 expansion, depthwise, 1x1 projection (no SE)."""

    def __init__(self, inputs, outputs, size, stride, expansion):
        super().__init__()
        hidden = inputs * expansion
        expand = _conv_bn(inputs, hidden) if expansion != 1 else []
        self.layers = nn.Sequential(
            *expand,
            *_conv_bn(hidden, hidden, size, stride, groups=hidden),
            *_conv_bn(hidden, outputs, activation=False),
        )
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x):
        return x + self.layers(x) if self.residual else self.layers(x)


# (expansion, output channels, blocks, kernel, first stride), timm's efficientnet_lite0.
EFFICIENTNET_LITE0_STAGES = (
    (1, 16, 1, 3, 1), (6, 24, 2, 3, 2), (6, 40, 2, 5, 2), (6, 80, 3, 3, 2),
    (6, 112, 3, 5, 1), (6, 192, 4, 5, 2), (6, 320, 1, 3, 1),
)


def efficientnet_lite0_features():
    """EfficientNet-Lite0 (ReLU6, no squeeze-excitation) without pooling and classifier."""
    layers, inputs = _conv_bn(3, 32, 3, 2), 32
    for expansion, outputs, blocks, size, stride in EFFICIENTNET_LITE0_STAGES:
        for index in range(blocks):
            layers.append(InvertedResidual(inputs, outputs, size, stride if index == 0 else 1, expansion))
            inputs = outputs
    return nn.Sequential(*layers, *_conv_bn(inputs, 1280)), 1280


ARCHITECTURES = {"resnet50": resnet50_features, "efficientnet_lite0": efficientnet_lite0_features}


def reference_classifier(architecture, num_classes, rate):
    """The authors' classifier on `architecture`'s features (random weights)."""
    features, width = ARCHITECTURES[architecture]()
    return FrozenBatchNormClassifier(features, width, num_classes, rate)
