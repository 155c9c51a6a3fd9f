"""Shared fixtures: tiny backbones of each kind, small enough for the CPU."""

import os

from tensorflow_kernels import use_onednn_kernels

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow in the tests as in the apps (oneDNN's kernels): tests compare
# in-process runs with the apps' runs, record for record.
use_onednn_kernels()

import keras  # noqa: E402
import pytest  # noqa: E402


def _tiny_keras_hub_resnet():
    import keras_hub

    keras.utils.set_random_seed(0)
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )


@pytest.fixture
def tiny_keras_hub_resnet():
    """A two-stage KerasHub ResNet (the real class, random weights)."""
    return _tiny_keras_hub_resnet()


@pytest.fixture
def tiny_keras_cv_resnet():
    """A two-stage KerasCV ResNet (the real class, random weights)."""
    import keras_cv

    keras.utils.set_random_seed(0)
    return keras_cv.models.ResNetBackbone(
        stackwise_filters=[64, 32],
        stackwise_blocks=[1, 1],
        stackwise_strides=[1, 2],
        include_rescaling=True,
        block_type="basic_block",
    )


@pytest.fixture
def tiny_conv_backbone():
    """A plain functional keras.Model: conv -> BatchNorm -> relu feature maps."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.ReLU()(x)
    return keras.Model(inputs, outputs, name="tiny_conv")


VLCS_DOMAINS = ("Caltech101", "LabelMe", "SUN09", "VOC2007")
VLCS_CLASSES = ("bird", "car", "chair", "dog", "person")


@pytest.fixture(scope="session")
def tiny_vlcs_tree(tmp_path_factory):
    """A DomainBed-layout VLCS tree of small images, with bad files in it.

    Each class has its own colour (shifted per domain), so a tiny network can
    learn it; Caltech101 holds a corrupt JPEG and LabelMe a text file.
    """
    import numpy as np
    from PIL import Image

    data_dir = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for d, domain in enumerate(VLCS_DOMAINS):
        for c, name in enumerate(VLCS_CLASSES):
            folder = data_dir / "VLCS" / domain / name
            folder.mkdir(parents=True)
            colour = np.array([c * 60, 255 - c * 50, (d * 70 + c * 30) % 256])
            for i in range(6):
                pixels = colour + rng.normal(0, 20, (24, 24, 3))
                image = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
                image.save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
    caltech_bird = data_dir / "VLCS" / "Caltech101" / "bird"
    (caltech_bird / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (data_dir / "VLCS" / "LabelMe" / "car" / "notes.txt").write_text("junk")
    return data_dir


@pytest.fixture(scope="session")
def tiny_preset_folder(tmp_path_factory):
    """A real KerasHub preset folder (tiny ResNet + image converter)."""
    import keras_hub

    folder = tmp_path_factory.mktemp("presets") / "tiny_resnet"
    backbone = _tiny_keras_hub_resnet()
    backbone.save_to_preset(str(folder))
    keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32), scale=1 / 255.0, offset=-0.5
    ).save_to_preset(str(folder))
    return str(folder)


USER_DOMAINS = ("site_a", "site_b", "site_c")
USER_CLASSES = ("cat", "dog", "fox")


def write_user_tree(root, per_class=4, size=24):
    """Writes `root/<domain>/<class>/<image>` as a user's data would be laid out.

    Three domains of small coloured images (one colour per class, shifted per
    domain); `site_b` has no `fox` (a class missing from a domain). Returns
    `root`.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for d, domain in enumerate(USER_DOMAINS):
        for c, name in enumerate(USER_CLASSES):
            if (domain, name) == ("site_b", "fox"):
                continue
            folder = root / domain / name
            folder.mkdir(parents=True)
            colour = np.array([c * 90, 255 - c * 80, (d * 70 + c * 30) % 256])
            for i in range(per_class):
                pixels = colour + rng.normal(0, 20, (size, size, 3))
                image = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
                image.save(folder / f"{name}_{i}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture
def user_tree(tmp_path):
    """A fresh user's folder of domains (see `write_user_tree`)."""
    return write_user_tree(tmp_path / "my_domains")
