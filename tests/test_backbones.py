import numpy as np
import pytest

from keras_ldrop import build_classifier
from keras_ldrop.backbones import BackboneError, resolve_backbone


@pytest.fixture
def hub_offline(monkeypatch):
    """Make hf:// fail at once, as it does offline, instead of after retries."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_model_instance_is_used_as_is(tiny_conv_backbone):
    resolved = resolve_backbone(tiny_conv_backbone)
    assert resolved.model is tiny_conv_backbone
    assert (resolved.scale, resolved.offset) == (None, None)


def test_local_preset_folder_loads_weights_and_scaling(tmp_path, tiny_keras_hub_resnet):
    import keras_hub

    folder = tmp_path / "tiny_resnet"
    tiny_keras_hub_resnet.save_to_preset(str(folder))
    keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32), scale=[0.1, 0.2, 0.3], offset=[-1.0, -2.0, -3.0]
    ).save_to_preset(str(folder))
    resolved = resolve_backbone(str(folder))
    assert resolved.scale == (0.1, 0.2, 0.3)
    assert resolved.offset == (-1.0, -2.0, -3.0)
    x = np.random.RandomState(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        resolved.model.predict(x, verbose=0),
        tiny_keras_hub_resnet.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-5,
    )
    model = build_classifier(folder, 3)
    assert model.get_layer("input_scaling").scale == [0.1, 0.2, 0.3]


def test_folder_without_config_is_rejected(tmp_path):
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(BackboneError, match="has no config.json"):
        resolve_backbone(str(tmp_path))


def test_missing_folder_is_rejected(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(BackboneError, match="is not a directory"):
        resolve_backbone(str(missing))


def test_unknown_preset_suggests_close_names():
    with pytest.raises(BackboneError) as error:
        resolve_backbone("resnet_50_imagenett")
    message = str(error.value)
    assert "Unknown backbone 'resnet_50_imagenett'" in message
    assert "Did you mean 'resnet_50_imagenet'" in message


@pytest.mark.parametrize(
    "spec", ["resnet_18_imagenet", "hf://timm/resnet50.tv2_in1k"]
)
def test_unreachable_hub_says_how_to_pass_a_folder(hub_offline, spec):
    with pytest.raises(BackboneError) as error:
        resolve_backbone(spec)
    message = str(error.value)
    assert f"Could not load backbone {spec!r}" in message
    assert "hub could not be reached" in message
    assert "pass backbone='DIR'" in message


def test_keras_cv_presets_resolve_through_their_family():
    with pytest.raises(BackboneError, match="Did you mean 'resnet50'"):
        resolve_backbone("keras_cv:resnet5")
    with pytest.raises(BackboneError) as error:
        resolve_backbone("keras_cv:resnet50_imagenet")
    assert "Could not load backbone 'keras_cv:resnet50_imagenet'" in str(error.value)


@pytest.mark.parametrize("spec", [42, "", None, ["resnet"]])
def test_unsupported_spec_types(spec):
    with pytest.raises(BackboneError, match="backbone must be"):
        resolve_backbone(spec)
