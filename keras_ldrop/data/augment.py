"""DomainBed's training augmentation as stateless TensorFlow ops.

DomainBed augments training images with torchvision's
`RandomResizedCrop(224, scale=(0.7, 1.0))`, `RandomHorizontalFlip()`,
`ColorJitter(0.3, 0.3, 0.3, 0.3)` and `RandomGrayscale()` (probability 0.1).
These functions do the same with every random draw taken from a `key` (a
shape-[2] int64 tensor) by `tf.random.stateless_*` ops, so an augmented image
depends only on its key: the stream is reproducible and resumable.

The crop box is drawn from the image size; the colour steps are drawn first
(`sample_color_parameters`) and then applied (`augment_colors`), a pure
function of the image and those parameters that runs under XLA. Both work on
one image `[H, W, 3]`; colour steps take floats in [0, 255] and clip after
each step, as torchvision does on uint8 images.

Example:

>>> import tensorflow as tf
>>> key = tf.constant([1, 2], tf.int64)
>>> top, left, height, width = random_resized_crop_box(480, 640, key)
>>> bool(0.7 * 480 * 640 <= int(height) * int(width) <= 480 * 640 + 640)
True
"""

import math

import tensorflow as tf

CROP_SCALE = (0.7, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
CROP_ATTEMPTS = 10
JITTER_STRENGTH = 0.3
GRAYSCALE_PROBABILITY = 0.1
MAX_VALUE = 255.0
_ALGORITHM = "philox"


def sub_key(key, index):
    """Returns the `index`-th key derived from `key` (both shape [2] int64)."""
    return tf.random.experimental.stateless_fold_in(key, index, alg=_ALGORITHM)


def _uniform(shape, key, minval=0.0, maxval=1.0):
    return tf.random.stateless_uniform(
        shape, key, minval=minval, maxval=maxval, dtype=tf.float32, alg=_ALGORITHM
    )


def _uniform_integer(key, maxval):
    """A draw in [0, maxval), `maxval` a positive int32 scalar tensor."""
    return tf.random.stateless_uniform(
        [], key, minval=0, maxval=maxval, dtype=tf.int32, alg=_ALGORITHM
    )


def random_resized_crop_box(height, width, key, scale=CROP_SCALE, ratio=CROP_RATIO):
    """Samples torchvision's `RandomResizedCrop` box in an image.

    Ten candidate boxes are drawn at once (area fraction uniform in `scale`,
    log aspect ratio uniform in `log(ratio)`); the first that fits is taken,
    else the centred box of the largest allowed aspect ratio, as torchvision
    does.

    Args:
        height: the image height (int scalar or tensor).
        width: the image width.
        key: a shape-[2] int64 key.
        scale: the range of the box area as a fraction of the image area.
        ratio: the range of the box aspect ratio (width / height).

    Returns:
        `(top, left, box_height, box_width)` as int32 scalar tensors.
    """
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    float_height = tf.cast(height, tf.float32)
    float_width = tf.cast(width, tf.float32)
    draws = _uniform([CROP_ATTEMPTS, 2], sub_key(key, 0))
    area = float_height * float_width * (scale[0] + (scale[1] - scale[0]) * draws[:, 0])
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = tf.exp(log_low + (log_high - log_low) * draws[:, 1])
    box_widths = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
    box_heights = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    fits = (
        (box_widths > 0) & (box_widths <= width) & (box_heights > 0) & (box_heights <= height)
    )
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)

    image_ratio = float_width / float_height
    fallback_width = tf.where(
        image_ratio > ratio[1], tf.cast(tf.round(float_height * ratio[1]), tf.int32), width
    )
    fallback_height = tf.where(
        image_ratio < ratio[0], tf.cast(tf.round(float_width / ratio[0]), tf.int32), height
    )
    found = tf.reduce_any(fits)
    box_height = tf.where(found, box_heights[first], fallback_height)
    box_width = tf.where(found, box_widths[first], fallback_width)
    top = tf.where(
        found,
        _uniform_integer(sub_key(key, 1), height - box_height + 1),
        (height - box_height) // 2,
    )
    left = tf.where(
        found,
        _uniform_integer(sub_key(key, 2), width - box_width + 1),
        (width - box_width) // 2,
    )
    return top, left, box_height, box_width


def sample_color_parameters(
    key, strength=JITTER_STRENGTH, grayscale_probability=GRAYSCALE_PROBABILITY
):
    """Draws the colour augmentation of one image as a float32 vector of 10.

    The vector holds: flip (1 or 0, probability 1/2); brightness, contrast
    and saturation factors (uniform in [1 - s, 1 + s]); the hue shift
    (uniform in [-s, s], a fraction of the colour circle); the order in
    which torchvision's `ColorJitter` applies these four (a permutation of
    0..3: brightness, contrast, saturation, hue); grayscale (1 or 0, with
    `grayscale_probability`).
    """
    draws = _uniform([2], sub_key(key, 0))
    factors = _uniform([3], sub_key(key, 1), 1.0 - strength, 1.0 + strength)
    hue_shift = _uniform([1], sub_key(key, 2), -strength, strength)
    order = tf.argsort(_uniform([4], sub_key(key, 3)))
    return tf.concat(
        [
            tf.cast(draws[:1] < 0.5, tf.float32),
            factors,
            hue_shift,
            tf.cast(order, tf.float32),
            tf.cast(draws[1:] < grayscale_probability, tf.float32),
        ],
        axis=0,
    )


def _grayscale(image):
    return tf.image.rgb_to_grayscale(image)


def augment_colors(image, parameters):
    """Flip, ColorJitter and RandomGrayscale of one float image with values in [0, 255].

    Deterministic given `parameters` (see `sample_color_parameters`), and
    compilable with XLA. Each jitter step clips to [0, 255]; contrast blends
    with the mean luma, saturation with the luma image, as torchvision does
    on images in Pillow.
    """
    flip, brightness, contrast, saturation, hue_shift = tf.unstack(parameters[:5])
    order = tf.cast(parameters[5:9], tf.int32)
    image = tf.cond(flip > 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)

    def adjust_brightness(image):
        return tf.clip_by_value(image * brightness, 0.0, MAX_VALUE)

    def adjust_contrast(image):
        mean = tf.reduce_mean(_grayscale(image))
        return tf.clip_by_value(mean + contrast * (image - mean), 0.0, MAX_VALUE)

    def adjust_saturation(image):
        gray = _grayscale(image)
        return tf.clip_by_value(gray + saturation * (image - gray), 0.0, MAX_VALUE)

    def adjust_hue(image):
        # The hue rotation does not depend on the value scale.
        return tf.clip_by_value(tf.image.adjust_hue(image, hue_shift), 0.0, MAX_VALUE)

    adjustments = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)

    def apply_slot(slot, image):
        branches = [lambda adjust=adjust: adjust(image) for adjust in adjustments]
        return slot + 1, tf.switch_case(order[slot], branches)

    _, image = tf.while_loop(
        lambda slot, _: slot < len(adjustments), apply_slot, (tf.constant(0), image)
    )
    return tf.cond(
        parameters[9] > 0.5,
        lambda: tf.image.grayscale_to_rgb(_grayscale(image)),
        lambda: image,
    )
