import hashlib

import numpy as np
import pytest

from keras_ldrop.data import DomainExamples, seed_hash, split_in_out


def _domain(count, name="photo"):
    paths = [f"{i}.jpg" for i in range(count)]
    return DomainExamples(name, labels=np.arange(count) % 3, paths=paths)


def test_seed_hash_is_domainbeds_md5_of_the_argument_tuple():
    expected = int(hashlib.md5(b"(3, 1)").hexdigest(), 16) % (2**31)
    assert seed_hash(3, 1) == expected


def test_split_sizes_are_disjoint_and_cover_the_domain():
    in_split, out_split = split_in_out(_domain(103), 0.2, trial_seed=0, domain_index=2)
    assert (len(in_split), len(out_split)) == (83, 20)
    assert set(in_split.paths).isdisjoint(out_split.paths)
    assert set(in_split.paths) | set(out_split.paths) == set(_domain(103).paths)
    labels = dict(zip(_domain(103).paths, _domain(103).labels))
    assert all(labels[path] == label for path, label in zip(in_split.paths, in_split.labels))


def test_split_is_deterministic_and_depends_on_trial_and_domain():
    first = split_in_out(_domain(50), 0.2, trial_seed=1, domain_index=0)[1].paths
    again = split_in_out(_domain(50), 0.2, trial_seed=1, domain_index=0)[1].paths
    other_trial = split_in_out(_domain(50), 0.2, trial_seed=2, domain_index=0)[1].paths
    other_domain = split_in_out(_domain(50), 0.2, trial_seed=1, domain_index=1)[1].paths
    assert first == again
    assert first != other_trial
    assert first != other_domain


def test_split_matches_domainbeds_shuffle():
    # DomainBed: keys = list(range(n)); RandomState(seed_hash(trial, env)).shuffle(keys);
    # out = keys[:int(n * holdout)], in = keys[int(n * holdout):].
    keys = list(range(40))
    np.random.RandomState(seed_hash(0, 3)).shuffle(keys)
    in_split, out_split = split_in_out(_domain(40), 0.25, trial_seed=0, domain_index=3)
    assert out_split.paths == tuple(f"{i}.jpg" for i in keys[:10])
    assert in_split.paths == tuple(f"{i}.jpg" for i in keys[10:])


def test_holdout_fraction_is_configurable_and_validated():
    in_split, out_split = split_in_out(_domain(10), 0.5, trial_seed=0, domain_index=0)
    assert (len(in_split), len(out_split)) == (5, 5)
    with pytest.raises(ValueError, match="holdout_fraction must be in \\[0, 1\\), received 1.5"):
        split_in_out(_domain(10), 1.5, trial_seed=0, domain_index=0)


def test_in_memory_examples_split_their_images():
    images = np.arange(6 * 2 * 2 * 3, dtype=np.uint8).reshape(6, 2, 2, 3)
    domain = DomainExamples("0", labels=np.arange(6), images=images)
    in_split, out_split = split_in_out(domain, 0.5, trial_seed=0, domain_index=0)
    for split in (in_split, out_split):
        np.testing.assert_array_equal(split.images, images[split.labels])
