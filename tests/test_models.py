import keras
import numpy as np
import pytest

from keras_ldrop import build_classifier
from keras_ldrop.classifier_layers import InferenceModeBackbone
from keras_ldrop.model_card import MissingModelCardError, read_model_card
from keras_ldrop.models import IMAGENET_SCALING

PIXEL_SCALING = {"scale": 1 / 255.0}


def _images(count=16, size=32, seed=0):
    return np.random.RandomState(seed).uniform(0, 255, (count, size, size, 3)).astype(
        "float32"
    )


def _batchnorms(model):
    return [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _snapshot(layers, attribute):
    return [keras.ops.convert_to_numpy(getattr(l, attribute)).copy() for l in layers]


def _fit(model, x, y, epochs=3):
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)


@pytest.mark.parametrize(
    "backbone_fixture",
    ["tiny_keras_hub_resnet", "tiny_keras_cv_resnet", "tiny_conv_backbone"],
)
def test_builds_the_papers_head_over_each_kind_of_backbone(request, backbone_fixture):
    backbone = request.getfixturevalue(backbone_fixture)
    model = build_classifier(backbone, num_classes=5, rate=0.9, image_size=32)
    names = [layer.name for layer in model.layers]
    assert names[-5:] == [
        "backbone", "pooling", "large_dropout", "predictions", "model_card"
    ]
    assert model.get_layer("large_dropout").rate == 0.9
    assert isinstance(model.get_layer("backbone"), InferenceModeBackbone)
    logits = model.predict(_images(2), verbose=0)
    assert logits.shape == (2, 5) and logits.dtype == np.float32
    assert np.isfinite(logits).all()


@pytest.mark.parametrize(
    "backbone_fixture", ["tiny_keras_hub_resnet", "tiny_conv_backbone"]
)
def test_fit_freezes_batchnorm_statistics_but_trains_gamma(request, backbone_fixture):
    backbone = request.getfixturevalue(backbone_fixture)
    model = build_classifier(backbone, 3, rate=0.5, normalization=PIXEL_SCALING)
    batchnorms = _batchnorms(backbone)
    assert batchnorms
    means = _snapshot(batchnorms, "moving_mean")
    variances = _snapshot(batchnorms, "moving_variance")
    gammas = _snapshot(batchnorms, "gamma")
    _fit(model, _images(), np.arange(16) % 3, epochs=2)
    for layer, mean, variance, gamma in zip(batchnorms, means, variances, gammas):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_mean), mean)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(layer.moving_variance), variance
        )
    assert any(
        not np.allclose(keras.ops.convert_to_numpy(l.gamma), g)
        for l, g in zip(batchnorms, gammas)
    )


def test_without_freezing_fit_updates_batchnorm_statistics(tiny_conv_backbone):
    model = build_classifier(
        tiny_conv_backbone, 3, normalization=PIXEL_SCALING, freeze_batchnorm=False
    )
    batchnorm = _batchnorms(tiny_conv_backbone)[0]
    mean = keras.ops.convert_to_numpy(batchnorm.moving_mean).copy()
    _fit(model, _images(), np.arange(16) % 3, epochs=1)
    assert not np.allclose(keras.ops.convert_to_numpy(batchnorm.moving_mean), mean)


def test_short_fit_lowers_the_loss(tiny_conv_backbone):
    labels = np.arange(32) % 2
    x = _images(32, seed=1) / 2
    x[np.arange(32), :, :, labels] += 120.0
    model = build_classifier(
        tiny_conv_backbone, 2, rate=0.5, normalization=PIXEL_SCALING, seed=0
    )
    history = _fit(model, x, labels, epochs=15)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]


def test_keras_file_round_trip_keeps_predictions(tmp_path, tiny_keras_hub_resnet):
    model = build_classifier(
        tiny_keras_hub_resnet, 4, rate=0.9, normalization="imagenet", seed=3
    )
    _fit(model, _images(), np.arange(16) % 4, epochs=1)
    path = tmp_path / "classifier.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    x = _images(3, seed=2)
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    assert restored.get_layer("large_dropout").rate == 0.9
    assert restored.get_layer("input_scaling").get_config()["offset"] == list(
        IMAGENET_SCALING["offset"]
    )


def test_token_backbone_uses_the_class_token():
    inputs = keras.Input((16, 16, 3))
    patches = keras.layers.Conv2D(6, 4, strides=4)(inputs)
    tokens = keras.layers.Reshape((16, 6))(patches)
    backbone = keras.Model(inputs, tokens)
    backbone.use_class_token = True
    model = build_classifier(backbone, 2, rate=0.5)
    x = _images(2, size=16)
    head = model.get_layer("predictions")
    expected = backbone.predict(x, verbose=0)[:, 0] @ keras.ops.convert_to_numpy(
        head.kernel
    ) + keras.ops.convert_to_numpy(head.bias)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    mean_model = build_classifier(keras.Model(inputs, tokens), 2)
    assert mean_model.get_layer("pooling").mode == "mean"


def test_mixed_precision_keeps_float32_logits(tiny_conv_backbone):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((None, None, 3))
        features = keras.layers.Conv2D(4, 3)(inputs)
        model = build_classifier(keras.Model(inputs, features), 3)
        logits = model.predict(_images(2), verbose=0)
    finally:
        keras.config.set_dtype_policy("float32")
    assert logits.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 0}, "num_classes must be a positive integer; received 0"),
        ({"num_classes": 2.5}, "received 2.5"),
        ({"rate": 1.0}, "received rate=1.0"),
        ({"pooling": "gem"}, "received 'gem'"),
        ({"pooling": "class_token"}, "does not apply to the backbone's feature maps"),
        ({"normalization": "inception"}, "received 'inception'"),
        ({"image_size": (32,)}, r"received \(32,\)"),
    ],
)
def test_bad_arguments_name_what_was_received(tiny_conv_backbone, kwargs, message):
    arguments = {"num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_classifier(tiny_conv_backbone, **arguments)


def test_head_is_initialised_like_a_pytorch_linear_layer(tiny_conv_backbone):
    model = build_classifier(tiny_conv_backbone, 200, rate=0.9)
    head = model.get_layer("predictions")
    bound = 1 / np.sqrt(8)  # the tiny backbone has 8 channels
    for weights in (head.kernel, head.bias):
        values = keras.ops.convert_to_numpy(weights)
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.9 * bound


def test_class_names_and_card_survive_saving_and_loading(tmp_path, tiny_conv_backbone):
    card = {"domains": ["site_a", "site_b"], "image_size": 32, "settings": {"rate": 0.9}}
    model = build_classifier(
        tiny_conv_backbone, 3, rate=0.9, image_size=32,
        class_names=["cat", "dog", "fox"], card=card,
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert read_model_card(loaded) == {**card, "class_names": ["cat", "dog", "fox"]}
    images = _images(2)
    np.testing.assert_array_equal(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0)
    )


def test_a_model_without_class_names_says_so(tiny_conv_backbone):
    model = build_classifier(tiny_conv_backbone, 3, image_size=32)
    with pytest.raises(MissingModelCardError, match="does not carry its class names"):
        read_model_card(model)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(MissingModelCardError, match="class_names="):
        read_model_card(plain)


@pytest.mark.parametrize(
    "class_names, card, message",
    [
        (["cat", "dog"], None, "class_names has 2 names for num_classes=3"),
        (["cat", "cat", "dog"], None, "class_names must be distinct"),
        (["cat", "dog", "fox"], {"when": object()}, "must be JSON-serialisable"),
    ],
)
def test_bad_class_names_or_card_are_refused(tiny_conv_backbone, class_names, card, message):
    with pytest.raises(ValueError, match=message):
        build_classifier(tiny_conv_backbone, 3, class_names=class_names, card=card)
