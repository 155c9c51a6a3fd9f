"""The paper's backbone offline: a timm-format ResNet-50 folder with random weights.

`write_resnet50_preset(folder)` writes what the hub repository behind
`hf://timm/resnet50.tv2_in1k` holds: `model.safetensors` with timm's key
names and shapes (the full 25.6M-parameter network, float32, random values
from a seeded numpy generator) and timm's `config.json`, with the tv2
`pretrained_cfg` as timm's `save_config_for_hf` writes it (the informational
`origin_url` left out). KerasHub's timm converter reads `architecture`,
`pretrained_cfg` (`input_size`, `mean`, `std`, `interpolation`) and the
tensors; `stage_in_hub_cache` lays the folder out as huggingface_hub's cache,
so that the hub handle itself resolves offline.
"""

import json
import pathlib

import numpy as np
from safetensors.numpy import save_file

HUB_REPO = "timm/resnet50.tv2_in1k"
HUB_HANDLE = f"hf://{HUB_REPO}"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_FEATURES = 2048
IMAGENET_CLASSES = 1000
# ResNet-50: (planes, blocks) per stage; bottleneck blocks output 4 x planes.
STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
_EXPANSION = 4
_SNAPSHOT = "0" * 40

# timm's `resnet50.tv2_in1k` pretrained_cfg (its `_cfg` defaults and the tv2
# entry: trained at 176 px, evaluated at 224 px with crop 0.965). KerasHub's
# image converter takes its size from `input_size` (176); keras_ldrop uses
# only the converter's scale and offset, the image size is the run's.
TV2_CONFIG = {
    "architecture": "resnet50",
    "num_classes": IMAGENET_CLASSES,
    "num_features": NUM_FEATURES,
    "global_pool": "avg",
    "pretrained_cfg": {
        "tag": "tv2_in1k",
        "custom_load": False,
        "input_size": [3, 176, 176],
        "test_input_size": [3, 224, 224],
        "fixed_input_size": False,
        "interpolation": "bilinear",
        "crop_pct": 0.875,
        "test_crop_pct": 0.965,
        "crop_mode": "center",
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "num_classes": IMAGENET_CLASSES,
        "pool_size": [6, 6],
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "bsd-3-clause",
    },
}


def _conv(in_channels, out_channels, kernel):
    return (out_channels, in_channels, kernel, kernel)


def tensor_shapes():
    """timm's ResNet-50 state dict: key -> shape, convolutions as (out, in, h, w).

    BatchNorm `num_batches_tracked` counters (int64 scalars) are included as
    in timm's files; `fc` is the 1000-class ImageNet head.
    """
    convs = {"conv1": _conv(3, 64, 7)}
    norms = {"bn1": 64}
    channels = 64
    for stage, (planes, blocks) in enumerate(STAGES, start=1):
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            convs[f"{prefix}.conv1"] = _conv(channels, planes, 1)
            convs[f"{prefix}.conv2"] = _conv(planes, planes, 3)
            convs[f"{prefix}.conv3"] = _conv(planes, planes * _EXPANSION, 1)
            for index, width in enumerate((planes, planes, planes * _EXPANSION)):
                norms[f"{prefix}.bn{index + 1}"] = width
            if block == 0:
                convs[f"{prefix}.downsample.0"] = _conv(
                    channels, planes * _EXPANSION, 1
                )
                norms[f"{prefix}.downsample.1"] = planes * _EXPANSION
            channels = planes * _EXPANSION
    shapes = {f"{name}.weight": shape for name, shape in convs.items()}
    for name, width in norms.items():
        for tensor in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{tensor}"] = (width,)
        shapes[f"{name}.num_batches_tracked"] = ()
    shapes["fc.weight"] = (IMAGENET_CLASSES, channels)
    shapes["fc.bias"] = (IMAGENET_CLASSES,)
    return shapes


def _random_tensor(key, shape, rng):
    """He-normal convolutions; BatchNorm close to identity; a small head.

    The last BatchNorm of each residual branch gets a small scale, so that
    activations stay of order one through the 16 blocks.
    """
    if key.endswith("num_batches_tracked"):
        return np.array(0, dtype=np.int64)
    if len(shape) == 4:
        fan_in = shape[1] * shape[2] * shape[3]
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    if key.startswith("fc."):
        return rng.normal(0.0, 0.01, shape)
    if key.endswith("running_var"):
        return rng.uniform(0.5, 1.5, shape)
    if key.endswith("weight"):
        last_of_branch = key.endswith(("bn3.weight", "downsample.1.weight"))
        low, high = (0.1, 0.3) if last_of_branch else (0.8, 1.2)
        return rng.uniform(low, high, shape)
    return rng.normal(0.0, 0.1, shape)


def random_tensors(seed=0):
    """timm's ResNet-50 tensors with random float32 values (deterministic)."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for key, shape in tensor_shapes().items():
        value = _random_tensor(key, shape, rng)
        tensors[key] = value if value.dtype == np.int64 else value.astype(np.float32)
    return tensors


def write_resnet50_preset(folder, seed=0):
    """Writes `model.safetensors` and `config.json` into `folder`; returns it as str."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(random_tensors(seed), folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(TV2_CONFIG, indent=2))
    return str(folder)


def stage_in_hub_cache(folder, cache_dir, repo=HUB_REPO):
    """Links the files of `folder` into huggingface_hub's cache layout for `repo`.

    With `huggingface_hub.constants.HF_HUB_CACHE = cache_dir` and offline
    mode on, `hf_hub_download(repo, name)` returns these files, so
    `f"hf://{repo}"` loads through KerasHub's hub code path.
    """
    repo_dir = pathlib.Path(cache_dir) / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / _SNAPSHOT
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(_SNAPSHOT)
    for path in pathlib.Path(folder).iterdir():
        (snapshot / path.name).symlink_to(path.resolve())
    return str(cache_dir)
