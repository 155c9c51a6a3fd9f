"""Image files that pass the scan-time check but fail to decode cannot stop a stream."""

import itertools
import re
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_ldrop.data import (
    DomainExamples,
    evaluation_dataset,
    load_domains,
    split_in_out,
    training_dataset,
)
from keras_ldrop.data.image_check import check_image_file
from keras_ldrop.data.safe_decode import (
    GRAY,
    UndecodableImageWarning,
    gray_images,
    load_batches,
)
from keras_ldrop.training import FinetuneConfig, train_and_evaluate
from tests.conftest import write_user_tree
from tests.damaged_images import real_jpeg, write_damaged_jpeg

DAMAGED_LABEL = 6
KINDS = pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])


def _take(dataset, count):
    return [(x.numpy(), y.numpy()) for x, y in itertools.islice(dataset, count)]


def _warnings_naming(caught, path):
    return [
        w for w in caught
        if issubclass(w.category, UndecodableImageWarning) and path in str(w.message)
    ]


def _photo_and(path):
    """A domain of one real photograph (label 0) and `path` (label `DAMAGED_LABEL`)."""
    photo = load_domains("pacs_mini")[2].paths[0]
    return DomainExamples("photo", [0, DAMAGED_LABEL], paths=[photo, str(path)])


@KINDS
def test_damaged_jpegs_pass_the_scan_and_fail_tensorflows_decode(tmp_path, progressive):
    damaged = write_damaged_jpeg(tmp_path / "damaged.jpg", progressive)
    assert check_image_file(str(damaged)) is None
    with pytest.raises(tf.errors.InvalidArgumentError, match="jpeg::Uncompress failed"):
        tf.io.decode_jpeg(damaged.read_bytes(), channels=3)


@KINDS
def test_training_stream_replaces_a_damaged_jpeg_and_names_it_once(tmp_path, progressive):
    damaged = str(write_damaged_jpeg(tmp_path / "damaged.jpg", progressive))
    intact = tmp_path / "intact.jpg"
    intact.write_bytes(real_jpeg(progressive))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = _take(training_dataset([_photo_and(damaged)], 16, 64, seed=0), 5)
    assert len(_warnings_naming(caught, damaged)) == 1
    reference = _take(training_dataset([_photo_and(intact)], 16, 64, seed=0), 5)
    replaced = 0
    for (images, labels), (intact_images, intact_labels) in zip(batches, reference):
        np.testing.assert_array_equal(labels, intact_labels)
        for image, intact_image, label in zip(images, intact_images, labels):
            if label != DAMAGED_LABEL:
                np.testing.assert_array_equal(image, intact_image)
            elif np.all(image == GRAY):
                replaced += 1
    assert replaced > 0


def test_a_stream_with_a_damaged_jpeg_is_deterministic_and_resumes(tmp_path):
    domain = _photo_and(write_damaged_jpeg(tmp_path / "damaged.jpg", progressive=True))
    with pytest.warns(UndecodableImageWarning):
        uninterrupted = _take(training_dataset([domain], 8, 32, seed=3), 4)
    again = _take(training_dataset([domain], 8, 32, seed=3), 4)
    resumed = _take(training_dataset([domain], 8, 32, seed=3, start_step=2), 2)
    for (a, a_labels), (b, b_labels) in zip(uninterrupted, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a_labels, b_labels)
    for (a, a_labels), (b, b_labels) in zip(uninterrupted[2:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a_labels, b_labels)


@KINDS
def test_evaluation_keeps_every_row_in_order_with_the_damaged_one_gray(tmp_path, progressive):
    photos = load_domains("pacs_mini")[2].paths[:2]
    damaged = str(write_damaged_jpeg(tmp_path / "damaged.jpg", progressive))
    domain = DomainExamples("photo", [0, 1, 2], paths=[photos[0], damaged, photos[1]])
    intact = DomainExamples("photo", [0, 2], paths=list(photos))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = _take(evaluation_dataset(domain, image_size=32, batch_size=2), 2)
        second = _take(evaluation_dataset(domain, image_size=32, batch_size=2), 2)
    assert len(_warnings_naming(caught, damaged)) == 1
    (reference, _), = _take(evaluation_dataset(intact, image_size=32, batch_size=2), 1)
    for batches in (first, second):
        images = np.concatenate([images for images, _ in batches])
        labels = np.concatenate([labels for _, labels in batches])
        assert labels.tolist() == [0, 1, 2]
        np.testing.assert_array_equal(images[[0, 2]], reference)
        assert np.all(images[1] == GRAY)


def test_batches_keep_their_place_and_rows_wherever_rows_fail(tmp_path):
    good = str(tmp_path / "good.png")
    Image.new("RGB", (6, 6), (10, 20, 30)).save(good)
    gone = [str(tmp_path / f"gone_{i}.png") for i in range(3)]
    paths = tf.data.Dataset.from_tensor_slices([gone[0], good, good, gone[1], gone[2]])

    def load(path):
        return tf.image.resize(tf.io.decode_png(tf.io.read_file(path), channels=3), [4, 4])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(
            load_batches(paths.batch(2), load, lambda paths: gray_images(paths, 4))
        )
    assert [len(_warnings_naming(caught, path)) for path in gone] == [1, 1, 1]
    images = np.concatenate(batches)
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [np.all(image == GRAY) for image in images] == [True, False, False, True, True]
    np.testing.assert_allclose(images[1:3], np.broadcast_to([10, 20, 30], (2, 4, 4, 3)))


def test_a_run_with_a_damaged_jpeg_in_a_training_domain_completes(
    tmp_path, tiny_preset_folder
):
    tree = write_user_tree(tmp_path / "my_domains")
    damaged = str(write_damaged_jpeg(tree / "site_a" / "cat" / "damaged.jpg", progressive=True))
    site_a = load_domains(str(tree))[0]
    training_split, _ = split_in_out(site_a, 0.2, trial_seed=0, domain_index=0)
    assert damaged in training_split.paths
    config = FinetuneConfig(
        dataset=str(tree), backbone=tiny_preset_folder, test_envs=(2,), image_size=32,
        batch_size=8, steps=4, checkpoint_freq=2, lr=0.01, average_start=2,
    )
    output = tmp_path / "run"
    with pytest.warns(UndecodableImageWarning, match=re.escape(damaged)):
        summary = train_and_evaluate(config, output, log=lambda _: None)
    assert (output / "done").exists()
    assert summary["final"]["step"] == 4
