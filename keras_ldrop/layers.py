"""The large-dropout layer applied to the penultimate representation.

Example:

>>> import numpy as np
>>> from keras_ldrop.layers import LargeDropout
>>> layer = LargeDropout(rate=0.9, seed=0)
>>> x = np.ones((4, 2048), "float32")
>>> y = layer(x, training=True)     # ~10% kept, each scaled by 1 / (1 - 0.9)
>>> bool((np.asarray(layer(x)) == x).all())   # identity at inference
True
"""

import math
import numbers

import keras


def validate_rate(rate):
    """Returns `rate` as a float if it is a dropout rate in [0, 1), else raises.

    Args:
        rate: the probability of dropping a unit.

    Raises:
        ValueError: `rate` is not a real number in [0, 1).
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise ValueError(
            f"The dropout rate must be a number in [0, 1); received "
            f"rate={rate!r} of type {type(rate).__name__}."
        )
    if math.isnan(rate) or not 0.0 <= rate < 1.0:
        raise ValueError(
            f"The dropout rate must be in [0, 1) (0.9 is the paper's "
            f"setting; 1 would drop everything); received rate={rate!r}."
        )
    return float(rate)


def _validate_noise_shape(noise_shape):
    if noise_shape is None:
        return None
    if isinstance(noise_shape, str):
        raise ValueError(
            "noise_shape must be a sequence of positive integers or None; "
            f"received noise_shape={noise_shape!r}."
        )
    try:
        noise_shape = tuple(noise_shape)
    except TypeError:
        raise ValueError(
            "noise_shape must be a sequence of positive integers or None; "
            f"received noise_shape={noise_shape!r}."
        ) from None
    for dim in noise_shape:
        if dim is not None and (
            isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0
        ):
            raise ValueError(
                "noise_shape must hold positive integers or None; received "
                f"noise_shape={noise_shape!r} (bad entry: {dim!r})."
            )
    return noise_shape


@keras.saving.register_keras_serializable(package="keras_ldrop")
class LargeDropout(keras.layers.Layer):
    """Inverted dropout with a very large rate, for a representation.

    In training, each unit is zeroed with probability `rate` and the kept
    units are scaled by `1 / (1 - rate)`, so the expected activation is
    unchanged; at inference it is the identity. The randomness comes from the
    layer's own `keras.random.SeedGenerator`, whose state is a variable: it
    traces under jit and is saved and restored with the model.

    Args:
        rate: probability of dropping a unit, in [0, 1). Default 0.9, the
            paper's setting for the small DomainBed datasets.
        noise_shape: optional shape of the binary mask, broadcast against
            the input; `None` entries take the input's size. E.g. for tokens
            `(batch, tokens, features)`, `(None, 1, None)` drops the same
            features in every token.
        seed: optional integer seed of the layer's generator.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> layer = LargeDropout(0.5, seed=1)
    >>> y = np.asarray(layer(np.ones((1, 8), "float32"), training=True))
    >>> sorted(set(y.ravel().tolist())) == [0.0, 2.0]
    True
    """

    def __init__(self, rate=0.9, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = validate_rate(rate)
        self.noise_shape = _validate_noise_shape(noise_shape)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        # As keras.layers.Dropout: built now (no weights to create), unless a
        # subclass overrides `build`.
        self._build_at_init()

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        return keras.random.dropout(
            inputs,
            self.rate,
            noise_shape=self._mask_shape(inputs),
            seed=self.seed_generator,
        )

    def _mask_shape(self, inputs):
        if self.noise_shape is None:
            return None
        shape = keras.ops.shape(inputs)
        if len(self.noise_shape) != len(shape):
            raise ValueError(
                f"noise_shape={self.noise_shape} has {len(self.noise_shape)} "
                f"dimensions but the input has {len(shape)} (shape {shape})."
            )
        return tuple(
            size if dim is None else dim
            for dim, size in zip(self.noise_shape, shape)
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            rate=self.rate, noise_shape=self.noise_shape, seed=self.seed
        )
        return config
