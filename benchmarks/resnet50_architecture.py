"""The ResNet-50 both benchmarks time: the paper's backbone, without weights.

Keras side: KerasHub's `ResNetBackbone` with ResNet-50's configuration (the
architecture `resnet_50_imagenet` and `hf://timm/resnet50.tv2_in1k` load into).
"""

RESNET50_CONFIG = dict(
    input_conv_filters=[64],
    input_conv_kernel_sizes=[7],
    stackwise_num_filters=[64, 128, 256, 512],
    stackwise_num_blocks=[3, 4, 6, 3],
    stackwise_num_strides=[1, 2, 2, 2],
    block_type="bottleneck_block",
    use_pre_activation=False,
    image_shape=(None, None, 3),
)


def keras_resnet50():
    """A randomly initialised KerasHub ResNet-50 backbone."""
    import keras_hub

    return keras_hub.models.ResNetBackbone(**RESNET50_CONFIG)
