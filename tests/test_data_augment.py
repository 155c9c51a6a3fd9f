import numpy as np
import tensorflow as tf

from keras_ldrop.data.augment import (
    augment_colors,
    random_resized_crop_box,
    sample_color_parameters,
)


def _key(i):
    return tf.constant([i, 7], tf.int64)


def test_crop_boxes_fit_and_follow_torchvision_ranges():
    boxes = tf.function(
        lambda keys: tf.map_fn(
            lambda key: tf.stack(random_resized_crop_box(300, 400, key)), keys, tf.int32
        )
    )(tf.stack([tf.range(50, dtype=tf.int64), tf.fill([50], tf.constant(7, tf.int64))], 1))
    for top, left, height, width in boxes.numpy().tolist():
        assert 0 <= top and top + height <= 300
        assert 0 <= left and left + width <= 400
        area = height * width / (300 * 400)
        assert 0.69 <= area <= 1.0
        assert 3 / 4 - 0.02 <= width / height <= 4 / 3 + 0.02


def test_crop_box_is_a_function_of_the_key():
    first = [int(v) for v in random_resized_crop_box(300, 400, _key(3))]
    assert first == [int(v) for v in random_resized_crop_box(300, 400, _key(3))]
    assert first != [int(v) for v in random_resized_crop_box(300, 400, _key(4))]


def test_crop_of_a_very_wide_image_falls_back_to_a_centred_box():
    top, left, height, width = (int(v) for v in random_resized_crop_box(10, 1000, _key(0)))
    assert (top, height, width) == (0, 10, 13)
    assert left == (1000 - 13) // 2


def _parameters(flip=0, brightness=1, contrast=1, saturation=1, hue=0, order=(0, 1, 2, 3), gray=0):
    return tf.constant([flip, brightness, contrast, saturation, hue, *order, gray], tf.float32)


def _image(seed=1, shape=(16, 16, 3)):
    return tf.random.stateless_uniform(shape, [seed, 2], maxval=255.0)


def test_color_parameters_follow_torchvision_ranges():
    keys = tf.stack([tf.range(300, dtype=tf.int64), tf.fill([300], tf.constant(7, tf.int64))], 1)
    drawn = tf.function(lambda keys: tf.map_fn(sample_color_parameters, keys, tf.float32))(keys)
    drawn = drawn.numpy()
    assert 0.35 < drawn[:, 0].mean() < 0.65  # flip with probability 1/2
    assert drawn[:, 1:4].min() >= 0.7 and drawn[:, 1:4].max() <= 1.3
    assert drawn[:, 4].min() >= -0.3 and drawn[:, 4].max() <= 0.3
    assert all(sorted(row) == [0, 1, 2, 3] for row in drawn[:, 5:9].astype(int))
    assert len({tuple(row) for row in drawn[:, 5:9].astype(int)}) > 12
    assert 0.03 < drawn[:, 9].mean() < 0.2  # grayscale with probability 0.1


def test_neutral_parameters_leave_the_image_unchanged():
    image = _image()
    np.testing.assert_allclose(augment_colors(image, _parameters()), image, atol=1e-3)


def test_flip_and_grayscale_parameters():
    image = _image()
    np.testing.assert_allclose(augment_colors(image, _parameters(flip=1)), image[:, ::-1], atol=1e-3)
    gray = augment_colors(image, _parameters(gray=1))
    np.testing.assert_allclose(gray[..., 0], gray[..., 2])
    expected = np.asarray(image) @ np.array([0.2989, 0.587, 0.114])
    np.testing.assert_allclose(gray[..., 1], expected, atol=0.1)


def test_jitter_clips_and_follows_its_order():
    image = _image() * 0.5 + 127.0
    brightness_first = augment_colors(image, _parameters(brightness=1.3, contrast=1.3))
    contrast_first = augment_colors(
        image, _parameters(brightness=1.3, contrast=1.3, order=(1, 0, 2, 3))
    )
    for output in (brightness_first, contrast_first):
        assert float(tf.reduce_min(output)) >= 0.0 and float(tf.reduce_max(output)) <= 255.0
    assert float(tf.reduce_max(tf.abs(brightness_first - contrast_first))) > 1.0
    shifted = augment_colors(image, _parameters(hue=0.25))
    np.testing.assert_allclose(shifted, tf.image.adjust_hue(image / 255.0, 0.25) * 255.0, atol=0.05)


def test_xla_compiled_colours_match_the_eager_ones():
    compiled = tf.function(augment_colors, jit_compile=True)
    for i in range(4):
        parameters = sample_color_parameters(_key(i))
        np.testing.assert_allclose(
            compiled(_image(i), parameters), augment_colors(_image(i), parameters), atol=0.05
        )
