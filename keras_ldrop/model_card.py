"""What a trained classifier predicts and how it was trained, saved inside it.

`build_classifier(..., class_names=..., card=...)` ends the model with a
`ModelCard` layer: the identity on the logits, whose config holds the class
names (output `i` is `class_names[i]`) and a JSON-serialisable dict about the
run (dataset, domains trained on and held out, image size, settings). It is
saved in the `.keras` file with the rest of the model, so after
`keras.saving.load_model` the model still knows what it predicts; no run
folder is needed.

Example:

>>> import keras
>>> from keras_ldrop.model_card import ModelCard, read_model_card
>>> inputs = keras.Input((4,))
>>> logits = keras.layers.Dense(2)(inputs)
>>> card = ModelCard(class_names=["cat", "dog"], card={"image_size": 96})
>>> model = keras.Model(inputs, card(logits))
>>> read_model_card(model)["class_names"]
['cat', 'dog']
"""

import json

import keras

LAYER_NAME = "model_card"


class MissingModelCardError(ValueError):
    """A model does not say what its outputs are (no `ModelCard` layer)."""


@keras.saving.register_keras_serializable(package="keras_ldrop")
class ModelCard(keras.layers.Layer):
    """The identity on a classifier's logits, carrying its class names and run facts.

    Args:
        class_names: one name per output, in output order; `None` when
            unknown.
        card: a JSON-serialisable dict (dataset, domains, image size,
            settings, ...), kept as given.
    """

    def __init__(self, class_names=None, card=None, **kwargs):
        kwargs.setdefault("name", LAYER_NAME)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if class_names is not None:
            class_names = [str(name) for name in class_names]
            if len(set(class_names)) != len(class_names):
                raise ValueError(
                    f"class_names must be distinct; received {class_names}."
                )
        self.class_names = class_names
        card = dict(card or {})
        try:
            json.dumps(card)
        except TypeError as error:
            raise ValueError(
                f"The model card must be JSON-serialisable; {error}."
            ) from None
        self.card = card
        self.built = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(class_names=self.class_names, card=self.card)
        return config


def read_model_card(model):
    """Returns `{"class_names": [...], **card}` of a keras_ldrop classifier.

    `image_size` is always there: the card's, or the model's fixed input
    side, or `None` for a model that takes any size and has no card value.

    Args:
        model: a `keras.Model`, e.g. from `keras.saving.load_model`.

    Raises:
        MissingModelCardError: the model has no `ModelCard` layer, or its
            card has no class names.
    """
    try:
        layer = model.get_layer(LAYER_NAME)
    except ValueError:
        layer = None
    if not isinstance(layer, ModelCard) or layer.class_names is None:
        raise MissingModelCardError(
            f"Model {model.name!r} does not carry its class names: it was not "
            "built by keras_ldrop.build_classifier with class_names= (models "
            "saved by apps/finetune.py carry them)."
        )
    info = dict(layer.card)
    info["class_names"] = list(layer.class_names)
    if info.get("image_size") is None:
        shape = model.input_shape
        info["image_size"] = shape[1] if shape[1] == shape[2] else None
    return info


def square_image_size(card, model):
    """The card's `image_size` as a positive int, the side of the images the model takes.

    Args:
        card: from `read_model_card`.
        model: how to name the model in the error (its path or name).

    Raises:
        ValueError: the card gives no such size (a model taking any size).
    """
    size = card["image_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(
            f"Model {model} does not say which square image size it takes: its "
            f"card's image_size is {size!r}."
        )
    return size
