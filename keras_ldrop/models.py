"""The classifier of the paper: backbone -> pooling -> large dropout -> linear head.

Example (a tiny backbone; any KerasHub/KerasCV preset or folder works the same):

>>> import keras
>>> from keras_ldrop.models import build_classifier
>>> inputs = keras.Input((32, 32, 3))
>>> features = keras.layers.Conv2D(16, 3, strides=2)(inputs)
>>> backbone = keras.Model(inputs, keras.layers.BatchNormalization()(features))
>>> model = build_classifier(backbone, num_classes=7, rate=0.9)
>>> [layer.name for layer in model.layers[-4:]]
['pooling', 'large_dropout', 'predictions', 'model_card']
"""

import math
import numbers

import keras

from keras_ldrop.backbones import resolve_backbone
from keras_ldrop.classifier_layers import (
    InferenceModeBackbone,
    InputScaling,
    TokenPooling,
)
from keras_ldrop.layers import LargeDropout
from keras_ldrop.model_card import ModelCard

# torchvision's ImageNet statistics, as scale/offset on [0, 255] pixels.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_SCALING = {
    "scale": tuple(1.0 / (255.0 * s) for s in _IMAGENET_STD),
    "offset": tuple(-m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD)),
}
POOLINGS = ("auto", "avg", "max", "class_token", "mean")


def build_classifier(
    backbone,
    num_classes,
    rate=0.9,
    *,
    image_size=None,
    pooling="auto",
    normalization="auto",
    freeze_batchnorm=True,
    seed=None,
    class_names=None,
    card=None,
    name="large_dropout_classifier",
):
    """Builds `Dense(num_classes)(LargeDropout(rate)(pool(backbone(x))))`.

    The head is initialised as PyTorch's `nn.Linear` (the authors' setting).
    The model takes RGB pixels in [0, 255], channels last, and returns
    logits. Its layers are named `input_scaling`, `backbone`, `pooling`,
    `large_dropout` and `predictions` (the head, for learning-rate
    multipliers such as `{"predictions": 10.0}`) and `model_card` (the
    identity on the logits, holding the class names and `card`: see
    `keras_ldrop.model_card`).

    Args:
        backbone: anything `keras_ldrop.backbones.resolve_backbone` accepts: a
            KerasHub preset name (`"resnet_50_imagenet"`), a hub handle
            (`"hf://timm/resnet50.tv2_in1k"`), a local preset folder, a KerasCV
            preset (`"keras_cv:resnet50_imagenet"`), the offline
            `"efficientnet_lite0_imagenet_offline"`, or a `keras.Model`.
        num_classes: number of classes, a positive integer.
        rate: dropout rate on the pooled representation, in [0, 1).
        image_size: `None` (any size), an int or `(height, width)`; a
            backbone with a fixed input shape keeps its own.
        pooling: `"auto"` (global average for feature maps; for tokens, the
            class token when the backbone has one, else their mean), `"avg"`,
            `"max"` (feature maps), `"class_token"` or `"mean"` (tokens).
        normalization: `"auto"` (the preset's own scaling; none for a model
            instance or a KerasCV preset, which rescales inside), `None` (no
            scaling), `"imagenet"` (torchvision mean/std), or a dict with
            `scale` and `offset` applied as `pixels * scale + offset`.
        freeze_batchnorm: run the backbone in inference mode, so BatchNorm
            statistics stay frozen while gamma/beta train (the paper's
            setting). If False the backbone follows the `training` flag.
        seed: seed of the dropout layer's generator.
        class_names: one name per class, saved with the model (read them
            back with `keras_ldrop.read_model_card`); `None` leaves them out.
        card: a JSON-serialisable dict saved with the model beside the
            class names (`apps/finetune.py` writes the dataset, domains,
            image size and the run's settings).
        name: the model's name.

    Raises:
        ValueError: a bad `num_classes`, `rate`, `pooling`, `normalization`
            `image_size`, `class_names` or `card`;
            `keras_ldrop.backbones.BackboneError` when the
            backbone cannot be resolved.
    """
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 1
    ):
        raise ValueError(
            f"num_classes must be a positive integer; received {num_classes!r}."
        )
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names for num_classes="
            f"{num_classes}; received class_names={list(class_names)}."
        )
    if pooling not in POOLINGS:
        raise ValueError(
            f"pooling must be one of {POOLINGS}; received {pooling!r}."
        )
    dropout = LargeDropout(rate, seed=seed, name="large_dropout")
    resolved = resolve_backbone(backbone)
    scaling = _scaling(normalization, resolved)
    inputs = keras.Input(_input_shape(resolved.model, image_size), name="pixels")
    x = InputScaling(**scaling, name="input_scaling")(inputs)
    if freeze_batchnorm:
        x = InferenceModeBackbone(resolved.model, name="backbone")(x)
    else:
        x = resolved.model(x)
    x = _pooling_layer(pooling, len(x.shape), resolved.model)(x)
    x = dropout(x)
    outputs = keras.layers.Dense(
        int(num_classes),
        dtype="float32",
        name="predictions",
        **_reference_head_initializers(x.shape[-1]),
    )(x)
    outputs = ModelCard(class_names, card, name="model_card")(outputs)
    return keras.Model(inputs, outputs, name=name)


def _reference_head_initializers(features):
    """PyTorch `nn.Linear`'s initialisation, as in the authors' head.

    Weights and biases uniform in +-1/sqrt(features): about 2.4 times smaller
    than Keras' Glorot default for a 1280-2048 wide representation, which
    matters when 90% dropout scales the kept features by 10.
    """
    bound = 1.0 / math.sqrt(features)
    return {
        "kernel_initializer": keras.initializers.VarianceScaling(
            1.0 / 3.0, mode="fan_in", distribution="uniform"
        ),
        "bias_initializer": keras.initializers.RandomUniform(-bound, bound),
    }


def _scaling(normalization, resolved):
    if isinstance(normalization, str) and normalization == "auto":
        return {"scale": resolved.scale, "offset": resolved.offset}
    if isinstance(normalization, str) and normalization == "imagenet":
        return dict(IMAGENET_SCALING)
    if normalization is None:
        return {"scale": None, "offset": None}
    if isinstance(normalization, dict) and set(normalization) <= {
        "scale",
        "offset",
    }:
        return {
            "scale": normalization.get("scale"),
            "offset": normalization.get("offset"),
        }
    raise ValueError(
        "normalization must be 'auto', 'imagenet', None or a dict with "
        f"'scale' and/or 'offset'; received {normalization!r}."
    )


def _input_shape(backbone, image_size):
    fixed = _fixed_image_shape(backbone)
    if fixed is not None:
        return fixed
    if image_size is None:
        return (None, None, 3)
    if isinstance(image_size, numbers.Integral) and not isinstance(
        image_size, bool
    ):
        image_size = (image_size, image_size)
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or not all(isinstance(s, numbers.Integral) and s > 0 for s in image_size)
    ):
        raise ValueError(
            "image_size must be None, a positive int or (height, width); "
            f"received {image_size!r}."
        )
    return (int(image_size[0]), int(image_size[1]), 3)


def _fixed_image_shape(backbone):
    try:
        shape = backbone.input_shape
    except (AttributeError, ValueError):
        return None
    if isinstance(shape, list) or shape is None or len(shape) != 4:
        return None
    if shape[1] is None or shape[2] is None:
        return None
    return tuple(shape[1:])


def _pooling_layer(pooling, rank, backbone):
    if rank == 4:
        if pooling in ("auto", "avg"):
            return keras.layers.GlobalAveragePooling2D(name="pooling")
        if pooling == "max":
            return keras.layers.GlobalMaxPooling2D(name="pooling")
    elif rank == 3:
        if pooling == "auto":
            has_class_token = getattr(backbone, "use_class_token", False)
            pooling = "class_token" if has_class_token else "mean"
        if pooling in ("class_token", "mean"):
            return TokenPooling(pooling, name="pooling")
    kind = {4: "feature maps", 3: "tokens"}.get(rank, f"rank-{rank} outputs")
    raise ValueError(
        f"pooling={pooling!r} does not apply to the backbone's {kind}. "
        "Feature maps take 'auto', 'avg' or 'max'; tokens take 'auto', "
        "'class_token' or 'mean'; other outputs are not supported."
    )
