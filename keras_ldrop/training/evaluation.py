"""Accuracies of a model, its weight average and the trajectory ensemble.

Every domain has an `in` and an `out` split; each is evaluated with the
evaluation transform (or, the training domains', with the training
augmentation as DomainBed does: `augment_seeds`) and reported under
DomainBed's keys `env{i}_in_acc` and `env{i}_out_acc`. The weight-averaged
model's accuracies carry the prefix `average_`, the trajectory ensemble's
(summed logits of the checkpoints so far) the prefix `ensemble_`.

Example:

>>> from keras_ldrop.training.evaluation import training_domain_validation
>>> record = {"env0_out_acc": 0.5, "env1_out_acc": 0.7, "env2_out_acc": 0.9}
>>> round(training_domain_validation(record, test_envs=[0]), 6)
0.8
"""

import contextlib
import functools

import numpy as np

from keras_ldrop.data import evaluation_pass, seed_hash, split_in_out
from keras_ldrop.data.pipelines import padded_pass_rows

AVERAGE_PREFIX = "average_"
ENSEMBLE_PREFIX = "ensemble_"
# Decoded evaluation images kept in memory between checkpoints up to this size:
# the minis (a few hundred images at 224 px) fit, the DomainBed datasets do not.
EVALUATION_CACHE_BYTES = 1 << 30


def split_names(num_domains):
    """`env0_in`, `env0_out`, `env1_in`, ... in DomainBed's order."""
    return [f"env{i}_{part}" for i in range(num_domains) for part in ("in", "out")]


def domain_splits(domains, holdout_fraction, trial_seed):
    """`{split name: examples}`: every domain's in and out split, in DomainBed's order.

    Args:
        domains: the dataset's domains, a list of `DomainExamples`.
        holdout_fraction: share of each domain held out as its out split.
        trial_seed: seeds the splits (`split_in_out`).
    """
    splits = {}
    for index, domain in enumerate(domains):
        split_in, split_out = split_in_out(domain, holdout_fraction, trial_seed, index)
        splits[f"env{index}_in"], splits[f"env{index}_out"] = split_in, split_out
    return splits


class SplitPredictor:
    """Every split's logits from one `predict` over one dataset, built once.

    The dataset is one `evaluation_pass` over the splits evaluated clean,
    then one over those evaluated with the training augmentation
    (`augment_seeds`: the same draw at every call). It is built when the
    predictor is made and read again at every call, so a run pays for its
    evaluation pipelines once, not at each checkpoint, and each call is one
    `predict`. The images are the same at every call, so when they fit in
    `cache_bytes` (float32) the first call keeps them in memory and the
    later ones only predict.

    Args:
        splits: `{name: DomainExamples}`; an empty split gets logits with no
            rows.
        image_size: side of the evaluation images.
        batch_size: evaluation batch size.
        augment_seeds: `{name: seed}` of the splits evaluated with the
            training augmentation (`evaluation_dataset`'s `augment_seed`);
            the others are evaluated clean.
        cache_bytes: the most memory the decoded images may take to be kept
            between calls (0: decode them at every call).
        process_index, process_count: in a multi-process run, this process
            reads and decodes only its rows of every batch
            (`evaluation_pass`), and the model it is called with must be a
            predictor that takes each process's rows and returns every
            process's outputs (`RunDistribution.predictor(model,
            process_local=True)`); `batch_size` must then split evenly
            across the devices.
    """

    def __init__(
        self, splits, image_size, batch_size=64, augment_seeds=None,
        cache_bytes=EVALUATION_CACHE_BYTES, process_index=0, process_count=1,
    ):
        augment_seeds = augment_seeds or {}
        share = dict(process_index=process_index, process_count=process_count)
        self.names = list(splits)
        self.sizes = {name: len(splits[name]) for name in self.names}
        clean = [name for name in self.names if self.sizes[name] and name not in augment_seeds]
        augmented = [name for name in self.names if self.sizes[name] and name in augment_seeds]
        passes = []
        # Each pass's rows in the predictor's outputs: its examples, then
        # the padding of its last batch in a multi-process run.
        self.pass_rows = []
        for names, seeds in ((clean, None), (augmented, augment_seeds)):
            if not names:
                continue
            passes.append(
                evaluation_pass(
                    [splits[name] for name in names], image_size, batch_size,
                    augment_seeds=None if seeds is None else [seeds[name] for name in names],
                    **share,
                )
            )
            examples = sum(self.sizes[name] for name in names)
            self.pass_rows.append(
                (examples, padded_pass_rows(examples, batch_size, process_count))
            )
        if not passes:
            raise ValueError(f"Every split is empty: {self.names}.")
        self.order = clean + augmented
        self.dataset = functools.reduce(lambda first, then: first.concatenate(then), passes)
        total = sum(self.sizes.values())
        self.cached = total * image_size * image_size * 3 * 4 <= cache_bytes
        if self.cached:
            self.dataset = self.dataset.cache()

    def __call__(self, model):
        """`{split name: float32 logits}` of `model` (or of a distribution's predictor)."""
        logits = np.asarray(model.predict(self.dataset, verbose=0), dtype=np.float32)
        expected = sum(rows for _, rows in self.pass_rows)
        if len(logits) != expected:
            raise RuntimeError(f"predict returned {len(logits)} rows for {expected}.")
        ends = np.cumsum([rows for _, rows in self.pass_rows])
        logits = np.concatenate([
            outputs[:examples]
            for outputs, (examples, _) in zip(np.split(logits, ends[:-1]), self.pass_rows)
        ])
        ends = np.cumsum([self.sizes[name] for name in self.order])
        by_name = dict(zip(self.order, np.split(logits, ends[:-1])))
        return {name: by_name.get(name, logits[:0]) for name in self.names}


def augmented_split_seeds(train_envs, seed):
    """`{split name: seed}` for the in and out splits of the training domains.

    Each split's draw is fixed for the run (`seed`), the same at every
    checkpoint, so that checkpoints are compared on the same images and the
    trajectory ensemble sums logits of the same inputs.

    >>> sorted(augmented_split_seeds([1, 2], seed=0))
    ['env1_in', 'env1_out', 'env2_in', 'env2_out']
    """
    return {
        f"env{env}_{part}": seed_hash(seed, env, part)
        for env in train_envs
        for part in ("in", "out")
    }


def accuracies(logits, splits, prefix=""):
    """Returns `{prefix + name + "_acc": accuracy}` from logits and labels."""
    return {
        f"{prefix}{name}_acc": float(
            np.mean(np.argmax(logits[name], axis=-1) == splits[name].labels)
        )
        for name in splits
    }


@contextlib.contextmanager
def averaged_weights(optimizer):
    """Temporarily loads the optimizer's weight average into the model.

    Args:
        optimizer: a `keras_ldrop.optimizers.SGD` built with `average_start`.
    """
    pairs = optimizer.average_pairs()
    # Copies, never shared buffers: JAX's predict donates (frees) the buffers
    # of the model's variables, which would free the averages with them.
    current = [np.array(variable) for variable, _ in pairs]
    for variable, average in pairs:
        variable.assign(np.array(average))
    try:
        yield
    finally:
        for (variable, _), value in zip(pairs, current):
            variable.assign(value)


def training_domain_validation(record, test_envs, prefix=""):
    """Mean out-split accuracy of the training domains (DomainBed's selection)."""
    train_envs = _train_envs(record, test_envs, prefix)
    return float(np.mean([record[f"{prefix}env{i}_out_acc"] for i in train_envs]))


def test_accuracy(record, test_envs, prefix=""):
    """Mean in-split accuracy of the test domains (DomainBed's o.o.d. figure).

    `None` for a run that held no domain out (it trained on every domain).
    """
    if not test_envs:
        return None
    return float(np.mean([record[f"{prefix}env{i}_in_acc"] for i in test_envs]))


def _train_envs(record, test_envs, prefix):
    envs = sorted(
        int(key[len(prefix) + 3 : -len("_out_acc")])
        for key in record
        if key.startswith(f"{prefix}env") and key.endswith("_out_acc")
    )
    return [i for i in envs if i not in set(test_envs)]
