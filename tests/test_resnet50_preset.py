"""The paper's default backbone, `hf://timm/resnet50.tv2_in1k`, full size, offline.

The hub cannot be reached here, so `tests/timm_resnet50.py` writes what its
repository holds (timm's tensor names and shapes, random values, the tv2
`config.json`) and stages it in huggingface_hub's cache: the handle itself
then resolves through keras_ldrop's and KerasHub's hub code path, as it does
on a machine with network access (offline, a handle that is not in the
cache fails: `tests/test_backbones.py`).
"""

import json
import pathlib
import time

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file
from skimage.data import astronaut, chelsea

from keras_ldrop import build_classifier
from keras_ldrop.backbones import resolve_backbone
from keras_ldrop.training import FinetuneConfig, train_and_evaluate
from tests.timm_resnet50 import (
    HUB_HANDLE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    NUM_FEATURES,
    STAGES,
    stage_in_hub_cache,
    tensor_shapes,
    write_resnet50_preset,
)

NUM_CLASSES = 5
# torch ResNet-50: 25,557,032 parameters, of which fc holds 2048 x 1000 + 1000.
RESNET50_PARAMETERS = 25_557_032
RESNET50_BACKBONE_PARAMETERS = RESNET50_PARAMETERS - (NUM_FEATURES * 1000 + 1000)
BATCHNORM_LAYERS = 53
BATCHNORM_CHANNELS = 26_560  # moving mean and variance: 2 x 26,560 statistics


@pytest.fixture(scope="module")
def preset_folder(tmp_path_factory):
    return write_resnet50_preset(tmp_path_factory.mktemp("timm") / "resnet50")


@pytest.fixture(scope="module")
def preset_tensors(preset_folder):
    return load_file(f"{preset_folder}/model.safetensors")


@pytest.fixture(scope="module")
def offline_hub(preset_folder, tmp_path_factory):
    """The hub handle served from a local huggingface_hub cache, offline."""
    import huggingface_hub.constants

    cache = stage_in_hub_cache(preset_folder, tmp_path_factory.mktemp("hub"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", cache)
        yield


@pytest.fixture(scope="module")
def classifier(offline_hub):
    return build_classifier(HUB_HANDLE, NUM_CLASSES, image_size=224, seed=0)


@pytest.fixture(scope="module")
def photos():
    """Two real photographs, centre-cropped to 224 x 224, as [0, 255] float32."""
    crops = [_centre_crop(image, 224) for image in (chelsea(), astronaut())]
    return np.stack(crops).astype("float32")


def _centre_crop(image, size):
    top = (image.shape[0] - size) // 2
    left = (image.shape[1] - size) // 2
    return image[top : top + size, left : left + size]


def tv2_normalisation(pixels):
    """timm's tv2 preprocessing after the resize: (x / 255 - mean) / std."""
    mean = np.array(IMAGENET_MEAN, "float64")
    std = np.array(IMAGENET_STD, "float64")
    return (pixels.astype("float64") / 255.0 - mean) / std


def reference_features(state, images):
    """timm's `resnet50` forward pass to the pooled features, in plain PyTorch.

    `state` holds the preset's tensors (timm's key names); `images` are NHWC,
    already normalised.
    """

    def conv(x, name, stride=1):
        kernel = torch.from_numpy(state[f"{name}.weight"])
        return F.conv2d(x, kernel, None, stride, kernel.shape[-1] // 2)

    def bn(x, name):
        mean, variance, gamma, beta = (
            torch.from_numpy(state[f"{name}.{tensor}"])
            for tensor in ("running_mean", "running_var", "weight", "bias")
        )
        return F.batch_norm(x, mean, variance, gamma, beta, training=False, eps=1e-5)

    x = torch.from_numpy(np.ascontiguousarray(images, "float32")).permute(0, 3, 1, 2)
    x = F.max_pool2d(F.relu(bn(conv(x, "conv1", 2), "bn1")), 3, 2, 1)
    for stage, (_, blocks) in enumerate(STAGES, start=1):
        for block in range(blocks):
            name = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            shortcut = x
            if block == 0:
                shortcut = bn(
                    conv(x, f"{name}.downsample.0", stride), f"{name}.downsample.1"
                )
            y = F.relu(bn(conv(x, f"{name}.conv1"), f"{name}.bn1"))
            y = F.relu(bn(conv(y, f"{name}.conv2", stride), f"{name}.bn2"))
            x = F.relu(bn(conv(y, f"{name}.conv3"), f"{name}.bn3") + shortcut)
    return x.mean(dim=(2, 3)).numpy()


def layer_output(model, layer_name, inputs):
    probe = keras.Model(model.input, model.get_layer(layer_name).output)
    return keras.ops.convert_to_numpy(probe(inputs, training=False))


def count(weights):
    return sum(int(np.prod(weight.shape)) for weight in weights)


def test_preset_file_holds_timms_resnet50(preset_folder, preset_tensors):
    shapes = {key: tuple(value.shape) for key, value in preset_tensors.items()}
    assert shapes == tensor_shapes()
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer4.0.downsample.0.weight"] == (2048, 1024, 1, 1)
    learned = [
        value
        for key, value in preset_tensors.items()
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked"))
    ]
    assert count(learned) == RESNET50_PARAMETERS
    config = json.loads((pathlib.Path(preset_folder) / "config.json").read_text())
    assert config["architecture"] == "resnet50"
    assert config["pretrained_cfg"]["mean"] == list(IMAGENET_MEAN)
    assert config["pretrained_cfg"]["std"] == list(IMAGENET_STD)


def test_hub_handle_and_local_folder_load_the_same_backbone(
    preset_folder, classifier
):
    from_folder = resolve_backbone(preset_folder)
    scaling = classifier.get_layer("input_scaling").get_config()
    np.testing.assert_array_equal(scaling["scale"], from_folder.scale)
    np.testing.assert_array_equal(scaling["offset"], from_folder.offset)
    folder_weights = from_folder.model.get_weights()
    hub_weights = classifier.get_layer("backbone").get_weights()
    assert len(folder_weights) == len(hub_weights) == 265
    for folder, hub in zip(folder_weights, hub_weights):
        np.testing.assert_array_equal(folder, hub)


def test_backbone_has_resnet50s_parameter_count(classifier):
    backbone = classifier.get_layer("backbone")
    head = classifier.get_layer("predictions")
    print(
        f"[{keras.backend.backend()}] backbone trainable "
        f"{count(backbone.trainable_weights):,}, statistics "
        f"{count(backbone.non_trainable_weights):,}"
    )
    assert count(backbone.trainable_weights) == RESNET50_BACKBONE_PARAMETERS
    assert count(backbone.non_trainable_weights) == 2 * BATCHNORM_CHANNELS
    assert count(head.trainable_weights) == NUM_FEATURES * NUM_CLASSES + NUM_CLASSES
    assert count(classifier.trainable_weights) == (
        RESNET50_BACKBONE_PARAMETERS + NUM_FEATURES * NUM_CLASSES + NUM_CLASSES
    )


def test_input_scaling_is_the_tv2_normalisation(classifier, photos):
    scaled = layer_output(classifier, "input_scaling", photos)
    error = np.max(np.abs(scaled - tv2_normalisation(photos)))
    print(f"[{keras.backend.backend()}] input scaling max |error| {error:.2e}")
    assert error < 2e-6


def test_features_match_timms_forward_pass(classifier, photos, preset_tensors):
    features = layer_output(classifier, "pooling", photos)
    expected = reference_features(preset_tensors, tv2_normalisation(photos))
    error = np.max(np.abs(features - expected))
    print(
        f"[{keras.backend.backend()}] pooled features max |error| {error:.2e} "
        f"(max |feature| {np.max(np.abs(expected)):.2f})"
    )
    assert features.shape == (2, NUM_FEATURES)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)


def timm_batchnorm_name(keras_name):
    """KerasHub's ResNet BatchNorm layer name -> timm's module name."""
    if keras_name == "conv1_bn":
        return "bn1"
    stack, block, index, _ = keras_name.split("_")
    prefix = f"layer{int(stack[len('stack'):]) + 1}.{block[len('block'):]}"
    return f"{prefix}.downsample.1" if index == "0" else f"{prefix}.bn{index}"


@pytest.mark.slow
def test_paper_default_fine_tunes_at_224_px_with_frozen_statistics(
    offline_hub, tiny_vlcs_tree, preset_tensors, tmp_path
):
    config = FinetuneConfig(
        dataset="vlcs",
        data_dir=str(tiny_vlcs_tree),
        steps=2,
        checkpoint_freq=2,
        batch_size=2,
    )
    resolved = config.resolve()
    assert (resolved.backbone, resolved.image_size) == (HUB_HANDLE, 224)
    start = time.perf_counter()
    summary = train_and_evaluate(config, tmp_path / "run", log=lambda _: None)
    seconds = time.perf_counter() - start
    print(f"[{keras.backend.backend()}] 2 steps at 224 px: {seconds:.1f} s")
    assert summary["final"]["step"] == 2
    final = keras.saving.load_model(tmp_path / "run" / "final.keras")
    assert final.input_shape == (None, 224, 224, 3)
    batchnorms = [
        layer
        for layer in final.get_layer("backbone").backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(batchnorms) == BATCHNORM_LAYERS
    for layer in batchnorms:
        timm_name = timm_batchnorm_name(layer.name)
        for variable, tensor in (
            (layer.moving_mean, "running_mean"),
            (layer.moving_variance, "running_var"),
        ):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(variable),
                preset_tensors[f"{timm_name}.{tensor}"],
            )
        gamma = keras.ops.convert_to_numpy(layer.gamma)
        assert not np.array_equal(gamma, preset_tensors[f"{timm_name}.weight"])
