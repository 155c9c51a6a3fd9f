"""Shared fixtures: tiny backbones of each kind, small enough for the CPU."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def tiny_keras_hub_resnet():
    """A two-stage KerasHub ResNet (the real class, random weights)."""
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
