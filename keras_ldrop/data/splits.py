"""Seeded in/out splits of each domain, DomainBed's way.

DomainBed holds out `int(len(domain) * holdout_fraction)` examples of each
domain ("out", for validation and model selection) and keeps the rest ("in",
for training or testing). The split is a NumPy `RandomState` shuffle seeded by
an MD5 hash of `(trial_seed, domain_index)`, so it is the same on every run,
machine and Keras backend, and, given the same example order (see `reader`),
the same as DomainBed's.

Example:

>>> from keras_ldrop.data.examples import DomainExamples
>>> domain = DomainExamples("photo", labels=[0] * 10, paths=[f"{i}.jpg" for i in range(10)])
>>> in_split, out_split = split_in_out(domain, 0.2, trial_seed=0, domain_index=0)
>>> len(in_split), len(out_split)
(8, 2)
"""

import hashlib

import numpy as np


def seed_hash(*values):
    """Returns a seed in [0, 2**31) derived from `values` (DomainBed's `seed_hash`)."""
    digest = hashlib.md5(str(values).encode("utf-8")).hexdigest()
    return int(digest, 16) % (2**31)


def split_in_out(examples, holdout_fraction, trial_seed, domain_index):
    """Splits one domain's examples into `(in_split, out_split)`.

    Args:
        examples: the domain's `DomainExamples`.
        holdout_fraction: the fraction held out in the out split, in [0, 1).
        trial_seed: the trial seed; different trials give different splits.
        domain_index: the domain's index in the dataset's domain order.

    Returns:
        Two `DomainExamples`: in (about `1 - holdout_fraction` of the
        examples) and out, disjoint, together all the examples.

    Raises:
        ValueError: `holdout_fraction` is outside [0, 1).
    """
    if not 0 <= holdout_fraction < 1:
        raise ValueError(
            f"holdout_fraction must be in [0, 1), received {holdout_fraction}."
        )
    order = np.random.RandomState(seed_hash(trial_seed, domain_index)).permutation(
        len(examples)
    )
    held_out = int(len(examples) * holdout_fraction)
    return examples.subset(order[held_out:]), examples.subset(order[:held_out])
