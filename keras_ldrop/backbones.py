"""Resolve what a user passes as `backbone=` into a Keras model and its input scaling.

Accepted specs:
- a KerasHub preset name, e.g. `"resnet_50_imagenet"`;
- a hub handle, e.g. `"hf://timm/resnet50.tv2_in1k"` (the paper's ResNet-50 V2
  weights) or `"kaggle://keras/resnetv2/keras/resnet_50_imagenet"`;
- a local preset folder (what `save_to_preset` writes, or a timm-layout folder
  with `config.json` and `model.safetensors`);
- a KerasCV preset, prefixed: `"keras_cv:resnet50_imagenet"`;
- an offline preset that keras_ldrop builds from a wheel:
  `"efficientnet_lite0_imagenet_offline"`;
- a model instance: a KerasHub `Backbone`, a KerasCV backbone or any
  `keras.Model` mapping images to feature maps or tokens.

Input scaling is owned by the model, not the data pipeline: the classifier takes
RGB pixels in [0, 255] and applies `pixels * scale + offset` itself. For
KerasHub presets and folders, scale and offset come from the preset's own image
converter; KerasCV presets rescale inside the backbone; a model instance gets
the pixels unchanged unless `build_classifier(normalization=...)` says
otherwise.

Example:

>>> import keras
>>> from keras_ldrop.backbones import resolve_backbone
>>> inputs = keras.Input((32, 32, 3))
>>> features = keras.layers.Conv2D(8, 3)(inputs)
>>> resolved = resolve_backbone(keras.Model(inputs, features))
>>> resolved.scale, resolved.offset
(None, None)
"""

import dataclasses
import difflib
import importlib
import os

from absl import logging
import keras

from keras_ldrop import offline_presets

KERAS_CV_PREFIX = "keras_cv:"
_OFFLINE_HINT = (
    "To work offline, save the preset on a machine with network access "
    "(keras_hub.models.Backbone.from_preset(NAME).save_to_preset(DIR)) and "
    "pass backbone='DIR', or pass a keras.Model instance."
)


_HUB_REASON = (
    ": the model hub could not be reached, or it has no such preset"
)


class BackboneError(ValueError):
    """A backbone spec could not be resolved into a model."""


@dataclasses.dataclass(frozen=True)
class ResolvedBackbone:
    """A backbone model and the input scaling its weights expect.

    Attributes:
        model: the backbone, a `keras.Model` from images to feature maps
            `(batch, height, width, channels)` or tokens
            `(batch, tokens, channels)`.
        scale: `None`, a float or a per-channel tuple multiplying [0, 255]
            pixels.
        offset: `None`, a float or a per-channel tuple added after `scale`.
        source: a short description of where the backbone came from.
    """

    model: keras.Model
    scale: object = None
    offset: object = None
    source: str = ""


def resolve_backbone(spec):
    """Resolves `spec` (see the module docstring) into a `ResolvedBackbone`.

    Raises:
        BackboneError: the spec is of an unsupported type, names an unknown
            preset, or the preset could not be loaded (e.g. the hub is
            unreachable); the message names the spec, the reason and how to
            pass a local folder instead.
    """
    if isinstance(spec, keras.Model):
        return ResolvedBackbone(spec, source=f"model instance {spec.name!r}")
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec:
        raise BackboneError(
            "backbone must be a preset name, a hub handle, a local preset "
            f"folder, a 'keras_cv:' preset or a keras.Model; received {spec!r} "
            f"of type {type(spec).__name__}."
        )
    if spec.startswith(KERAS_CV_PREFIX):
        return _resolve_keras_cv(spec[len(KERAS_CV_PREFIX):])
    offline_folder = offline_presets.resolve_offline_preset(spec)
    if offline_folder is not None:
        return _resolve_keras_hub(os.fspath(offline_folder), shown_as=spec)
    return _resolve_keras_hub(spec, shown_as=spec)


def _looks_like_path(spec):
    return os.sep in spec or spec.startswith(".") or os.path.exists(spec)


def _resolve_keras_hub(preset, shown_as):
    import keras_hub

    if "://" not in preset and _looks_like_path(preset):
        if not os.path.isdir(preset):
            raise BackboneError(
                f"Backbone {shown_as!r} looks like a local preset folder but "
                f"{os.path.abspath(preset)} is not a directory."
            )
        if not os.path.isfile(os.path.join(preset, "config.json")):
            raise BackboneError(
                f"Backbone folder {os.path.abspath(preset)} has no config.json, "
                "so it is not a KerasHub preset (expected what "
                "Backbone.save_to_preset writes, or a timm folder with "
                "config.json and model.safetensors)."
            )
    elif "://" not in preset and preset not in keras_hub.models.Backbone.presets:
        close = difflib.get_close_matches(
            preset, list(keras_hub.models.Backbone.presets), n=3
        )
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise BackboneError(
            f"Unknown backbone {shown_as!r}: not a KerasHub preset name, a hub "
            "handle (hf://..., kaggle://...), a local folder, a 'keras_cv:' "
            f"preset or an offline preset "
            f"({offline_presets.OFFLINE_PRESET_NAME!r}).{hint}"
        )
    try:
        model = keras_hub.models.Backbone.from_preset(preset)
    except Exception as error:
        where = "" if os.path.isdir(preset) else _HUB_REASON
        raise BackboneError(
            f"Could not load backbone {shown_as!r}{where} "
            f"({type(error).__name__}: {_first_line(error)}). {_OFFLINE_HINT}"
        ) from error
    scale, offset = _image_converter_scaling(preset, shown_as)
    return ResolvedBackbone(model, scale, offset, source=f"KerasHub {shown_as}")


def _image_converter_scaling(preset, shown_as):
    import keras_hub

    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception as error:
        logging.warning(
            "Backbone %r has no image converter (%s); its inputs will be the "
            "[0, 255] pixels unscaled. Pass build_classifier(normalization=...) "
            "to set the scaling its weights expect.",
            shown_as,
            _first_line(error),
        )
        return None, None
    return _as_plain(converter.scale), _as_plain(converter.offset)


def _as_plain(value):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return tuple(float(v) for v in value)
    return float(value)


def _resolve_keras_cv(name):
    try:
        keras_cv = importlib.import_module("keras_cv")
    except ImportError as error:
        raise BackboneError(
            f"Backbone 'keras_cv:{name}' needs KerasCV, which is not "
            "installed: pip install 'keras_ldrop[cv]' (or keras-cv==0.9.0)."
        ) from error
    families = _keras_cv_families(keras_cv)
    family = families.get(name)
    if family is None:
        close = difflib.get_close_matches(name, list(families), n=3)
        hint = (
            f"Did you mean {', '.join(map(repr, close))}?"
            if close
            else f"Known: {', '.join(sorted(families))}."
        )
        raise BackboneError(f"Unknown KerasCV preset 'keras_cv:{name}'. {hint}")
    try:
        model = family.from_preset(name)
    except Exception as error:
        raise BackboneError(
            f"Could not load backbone 'keras_cv:{name}'{_HUB_REASON} "
            f"({type(error).__name__}: {_first_line(error)}). {_OFFLINE_HINT}"
        ) from error
    return ResolvedBackbone(model, source=f"KerasCV {name}")


def _keras_cv_families(keras_cv):
    """Maps each KerasCV backbone preset name to the class that defines it."""
    classes = [
        cls
        for cls in vars(keras_cv.models).values()
        if isinstance(cls, type)
        and issubclass(cls, keras_cv.models.Backbone)
        and cls.presets
    ]
    # A family's base class lists every preset of the family; its aliases
    # (e.g. ResNet50Backbone) list a subset and load them differently.
    classes.sort(key=lambda cls: len(cls.presets), reverse=True)
    families = {}
    for cls in classes:
        for preset in cls.presets:
            families.setdefault(preset, cls)
    return families


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0].rstrip(".") if text else "no details"
