"""Every split evaluated from one pipeline built once: the same images and logits as split by split."""

import keras
import numpy as np
import pytest

from keras_ldrop.data import DomainExamples, evaluation_dataset, evaluation_pass, load_domains
from keras_ldrop.training.evaluation import SplitPredictor
from tests.test_evaluation_augmentation import one_pass


def photo_sets():
    """Three small sets of real images (7, 3 and 5) from two domains."""
    domains = load_domains("pacs_mini")
    cuts = [(1, 0, 7), (1, 7, 10), (2, 0, 5)]
    return [
        DomainExamples(
            f"{domains[d].name}[{start}:{end}]",
            domains[d].labels[start:end],
            paths=domains[d].paths[start:end],
        )
        for d, start, end in cuts
    ]


@pytest.mark.parametrize("seeds", [None, [5, 6, 7]])
def test_one_pass_over_several_sets_gives_each_sets_own_pass(seeds):
    sets = photo_sets()
    images, labels, rows = one_pass(evaluation_pass(sets, 32, 3, augment_seeds=seeds))
    assert rows == [3, 3, 3, 3, 3]  # batches span the sets
    one_by_one = [
        one_pass(evaluation_dataset(examples, 32, 3, augment_seed=seeds and seeds[i]))
        for i, examples in enumerate(sets)
    ]
    np.testing.assert_array_equal(images, np.concatenate([each[0] for each in one_by_one]))
    np.testing.assert_array_equal(labels, np.concatenate([each[1] for each in one_by_one]))


def test_an_empty_set_is_refused_with_its_name():
    empty = DomainExamples("nothing", np.zeros([0], np.int32), paths=[])
    with pytest.raises(ValueError, match=r"Domains \['nothing'\] hold no examples"):
        evaluation_pass([photo_sets()[0], empty], 32)


def tiny_classifier():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(7),
        ]
    )


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30])
def test_every_split_gets_its_own_logits_at_every_call(cache_bytes):
    sets = photo_sets()
    splits = {
        "env0_in": sets[0],
        "env0_out": DomainExamples("none held out", np.zeros([0], np.int32), paths=[]),
        "env1_in": sets[1],
        "env1_out": sets[2],
    }
    seeds = {"env1_in": 3, "env1_out": 4}
    model = tiny_classifier()
    predictor = SplitPredictor(splits, 32, batch_size=3, augment_seeds=seeds, cache_bytes=cache_bytes)
    assert predictor.cached == bool(cache_bytes)
    first = predictor(model)
    assert list(first) == list(splits)
    assert first["env0_out"].shape == (0, 7)
    for name, examples in splits.items():
        if len(examples):
            alone = model.predict(
                evaluation_dataset(examples, 32, 3, augment_seed=seeds.get(name)), verbose=0
            )
            np.testing.assert_allclose(first[name], alone, rtol=1e-5, atol=1e-5)
    again = predictor(model)
    for name in splits:
        np.testing.assert_array_equal(again[name], first[name])
