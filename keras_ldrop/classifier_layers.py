"""Layers the classifier is made of, besides `LargeDropout`.

- `InputScaling`: `pixels * scale + offset`, the backbone's own normalisation.
- `InferenceModeBackbone`: runs a backbone in inference mode, so BatchNorm
  running statistics stay frozen while every weight (gamma, beta included)
  trains.
- `TokenPooling`: turns `(batch, tokens, channels)` into `(batch, channels)`.
"""

import keras


def _channel_values(value, name):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(
        f"{name} must be None, a number or a per-channel sequence of numbers; "
        f"received {name}={value!r}."
    )


@keras.saving.register_keras_serializable(package="keras_ldrop")
class InputScaling(keras.layers.Layer):
    """Computes `inputs * scale + offset`, per channel or global.

    Args:
        scale: `None`, a float, or one float per channel (last axis).
        offset: `None`, a float, or one float per channel.

    Example:

    >>> import numpy as np
    >>> layer = InputScaling(scale=1 / 128, offset=-127 / 128)
    >>> float(np.asarray(layer(np.full((1, 1, 1, 3), 255.0)))[0, 0, 0, 0])
    1.0
    """

    def __init__(self, scale=None, offset=None, **kwargs):
        super().__init__(**kwargs)
        self.scale = _channel_values(scale, "scale")
        self.offset = _channel_values(offset, "offset")
        self.built = True

    def call(self, inputs):
        outputs = keras.ops.cast(inputs, self.compute_dtype)
        if self.scale is not None:
            outputs = outputs * keras.ops.cast(self.scale, self.compute_dtype)
        if self.offset is not None:
            outputs = outputs + keras.ops.cast(self.offset, self.compute_dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, offset=self.offset)
        return config


@keras.saving.register_keras_serializable(package="keras_ldrop")
class InferenceModeBackbone(keras.layers.Layer):
    """Wraps a backbone so it always runs with `training=False`.

    This is the paper's `freeze_bn`: BatchNorm layers normalise with their
    running statistics and never update them, while gamma, beta and every
    other weight stay trainable. In Keras 3, calling a functional backbone
    with `training=False` inside a functional model does not do this (the
    outer `training` flag of `fit` wins); passing it from a layer's `call`
    does. Any dropout inside the backbone is off too.

    Args:
        backbone: the `keras.Model` to wrap.

    Example:

    >>> import keras
    >>> inputs = keras.Input((8, 8, 3))
    >>> backbone = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    >>> wrapped = InferenceModeBackbone(backbone)
    >>> tuple(wrapped(keras.ops.ones((2, 8, 8, 3)), training=True).shape)
    (2, 8, 8, 3)
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def build(self, input_shape):
        if not self.backbone.built:
            self.backbone.build(input_shape)
        self.built = True

    def call(self, inputs):
        return self.backbone(inputs, training=False)

    def compute_output_spec(self, inputs):
        return self.backbone.compute_output_spec(inputs)

    def get_config(self):
        config = super().get_config()
        config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"]
        )
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_ldrop")
class TokenPooling(keras.layers.Layer):
    """Pools `(batch, tokens, channels)` into `(batch, channels)`.

    Args:
        mode: `"class_token"` takes the first token (ViT's class token);
            `"mean"` averages all tokens.

    Example:

    >>> import numpy as np
    >>> tokens = np.arange(12, dtype="float32").reshape(1, 3, 4)
    >>> np.asarray(TokenPooling("class_token")(tokens)).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """

    MODES = ("class_token", "mean")

    def __init__(self, mode="class_token", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(
                f"TokenPooling mode must be one of {self.MODES}; received "
                f"mode={mode!r}."
            )
        self.mode = mode
        self.built = True

    def call(self, inputs):
        if self.mode == "class_token":
            return inputs[:, 0, :]
        return keras.ops.mean(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
