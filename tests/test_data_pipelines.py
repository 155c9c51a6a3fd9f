import itertools

import keras
import numpy as np
import pytest
from PIL import Image

from keras_ldrop.data import (
    DomainExamples,
    evaluation_dataset,
    load_domains,
    training_dataset,
)


def _constant_domain(value, label, count=5, side=12):
    images = np.full((count, side, side, 3), value, dtype=np.uint8)
    return DomainExamples(f"domain_{label}", labels=[label] * count, images=images)


def _file_domain(folder, label, color, count=3):
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = folder / f"{i}.png"
        Image.new("RGB", (20 + i, 16), color).save(path)
        paths.append(str(path))
    return DomainExamples(folder.name, labels=[label] * count, paths=paths)


def _take(dataset, count):
    batches = itertools.islice(dataset, count)
    return [(images.numpy(), labels.numpy()) for images, labels in batches]


def test_each_block_of_rows_comes_from_its_domain():
    domains = [_constant_domain(30, 0), _constant_domain(140, 1), _constant_domain(250, 2)]
    for images, labels in _take(training_dataset(domains, 4, 8, seed=0), 3):
        assert images.shape == (12, 8, 8, 3)
        assert images.dtype == np.float32 and labels.dtype == np.int32
        for block, value in enumerate((30, 140, 250)):
            np.testing.assert_allclose(images[4 * block : 4 * block + 4], value, atol=1e-3)
            assert list(labels[4 * block : 4 * block + 4]) == [block] * 4


def test_file_domains_are_augmented_and_keep_their_blocks(tmp_path):
    domains = [
        _file_domain(tmp_path / "red", 0, (250, 10, 10)),
        _file_domain(tmp_path / "blue", 1, (10, 10, 250)),
    ]
    (images, labels), = _take(training_dataset(domains, 6, 16, seed=0), 1)
    assert images.shape == (12, 16, 16, 3)
    assert list(labels) == [0] * 6 + [1] * 6
    assert images.min() >= 0.0 and images.max() <= 255.0
    colours = images.mean(axis=(1, 2))
    assert np.std(colours[:6], axis=0).max() > 1.0  # jitter changed the colours


def test_sampling_is_uniform_with_replacement():
    domain = DomainExamples(
        "digits",
        labels=np.arange(10),
        images=np.repeat(np.arange(10, dtype=np.uint8)[:, None, None, None] * 20, 4, 1)
        .repeat(4, 2)
        .repeat(3, 3),
    )
    labels = np.concatenate([labels for _, labels in _take(training_dataset([domain], 50, 4), 4)])
    counts = np.bincount(labels, minlength=10)
    assert counts.min() > 5 and counts.max() < 40


def test_stream_is_deterministic_and_resumes_at_any_step():
    domains = load_domains("pacs_mini")[1:3]
    uninterrupted = _take(training_dataset(domains, 2, 32, seed=1), 4)
    resumed = _take(training_dataset(domains, 2, 32, seed=1, start_step=2), 2)
    for (a, a_labels), (b, b_labels) in zip(uninterrupted[2:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a_labels, b_labels)
    assert not np.array_equal(uninterrupted[2][0], uninterrupted[3][0])
    (other, _), = _take(training_dataset(domains, 2, 32, seed=2, start_step=2), 1)
    assert not np.array_equal(uninterrupted[2][0], other)


def test_evaluation_dataset_resizes_in_order_without_augmentation(tmp_path):
    domain = _file_domain(tmp_path / "green", 4, (20, 200, 40), count=5)
    batches = list(evaluation_dataset(domain, image_size=10, batch_size=2))
    assert [int(images.shape[0]) for images, _ in batches] == [2, 2, 1]
    images = np.concatenate([images.numpy() for images, _ in batches])
    np.testing.assert_allclose(images, np.broadcast_to([20, 200, 40], images.shape), atol=1e-3)
    assert np.concatenate([labels.numpy() for _, labels in batches]).tolist() == [4] * 5


def test_in_memory_evaluation_dataset():
    domain = _constant_domain(99, 1, count=3, side=28)
    images, labels = next(iter(evaluation_dataset(domain, image_size=32, batch_size=8)))
    assert images.shape == (3, 32, 32, 3)
    np.testing.assert_allclose(images.numpy(), 99, atol=1e-3)


def test_mixed_or_empty_domains_are_rejected(tmp_path):
    files = _file_domain(tmp_path / "files", 0, (1, 2, 3))
    with pytest.raises(ValueError, match="all hold file paths, all prepared records or all in-memory images"):
        training_dataset([files, _constant_domain(1, 0)], 2, 8)
    empty = DomainExamples("empty", labels=[], paths=[])
    with pytest.raises(ValueError, match="Domains \\['empty'\\] hold no examples"):
        training_dataset([files, empty], 2, 8)


def test_a_training_batch_feeds_model_fit():
    domains = load_domains("rotated_mnist")[:2]
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(
        training_dataset(domains, 4, 16, seed=0),
        steps_per_epoch=2,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])
