"""Model selection among the runs of one cell, DomainBed's way.

A cell is the set of runs that share the dataset, test domain, dropout rate,
trial (splits) and fixed settings, and differ in the searched hyperparameters
(learning rate, weight decay, head learning-rate factor). Selection picks one
record of one run and reports its i.i.d. accuracy (training-domain
validation: mean out-split accuracy of the training domains) and o.o.d.
accuracy (in-split accuracy of the test domain).

- `training_domain` (DomainBed's `IIDAccuracySelectionMethod`, the default):
  in every run the checkpoint with the best training-domain validation, then
  the run whose chosen checkpoint validates best.
- `oracle` (DomainBed's `OracleSelectionMethod`): the last checkpoint of the
  run with the best accuracy on the test domain's out split.
- `last`: the last checkpoint of the run with the best training-domain
  validation at its last checkpoint.
- `paper` (the paper's estimator, not a selection among runs): in every run
  the checkpoint with the best training-domain validation, as `select_in_run`
  gives it; `collect.collect_scores` then averages the cell's runs, one per
  hyperparameter setting, instead of picking one.

A `prefix` selects among the weight averages (`average_`) or trajectory
ensembles (`ensemble_`) instead of the models themselves; records without
that prefix (before the averaging starts) are left out. Ties go to the
earliest step and the first run in folder order.

Example:

>>> from keras_ldrop.experiments.selection import select
>>> class Run:  # anything with `records` and `test_envs`
...     test_envs = (0,)
...     records = [
...         {"step": 1, "env0_in_acc": .5, "env0_out_acc": .5, "env1_out_acc": .6},
...         {"step": 2, "env0_in_acc": .7, "env0_out_acc": .6, "env1_out_acc": .8},
...     ]
>>> select([Run()], "training_domain").ood
0.7
"""

import dataclasses

import numpy as np

from keras_ldrop.training.evaluation import test_accuracy, training_domain_validation

PAPER = "paper"
DOMAINBED_SELECTIONS = ("training_domain", "oracle", "last")
SELECTIONS = (*DOMAINBED_SELECTIONS, PAPER)
# What each table and figure names as its estimator.
SELECTION_LABELS = {
    "training_domain": "DomainBed's training-domain validation "
    "(best hyperparameter setting per trial)",
    "oracle": "DomainBed's oracle (test-domain validation, last checkpoint)",
    "last": "last checkpoint (best hyperparameter setting per trial)",
    PAPER: "the paper's (each run's checkpoint by training-domain validation, "
    "mean over every hyperparameter setting)",
}


@dataclasses.dataclass(frozen=True)
class Selected:
    """The chosen record's accuracies, run and step."""

    iid: float
    ood: float
    folder: str
    step: int


def check_selection(selection, allowed=SELECTIONS):
    """Raises `ValueError` unless `selection` is one of `allowed`."""
    if selection not in allowed:
        raise ValueError(
            f"Unknown model selection {selection!r}; expected one of "
            f"{', '.join(allowed)}."
        )


def select(runs, selection, prefix=""):
    """Selects one checkpoint among `runs`; `None` if none has `prefix` records.

    Args:
        runs: the cell's runs (each with `records`, `test_envs` and, for the
            result, `folder`).
        selection: one of `DOMAINBED_SELECTIONS`.
        prefix: `""`, `"average_"` or `"ensemble_"`.
    """
    check_selection(selection, DOMAINBED_SELECTIONS)
    best = None
    for run in runs:
        key = f"{prefix}env{run.test_envs[0]}_in_acc"
        records = [record for record in run.records if key in record]
        if not records:
            continue
        if selection == "training_domain":
            chosen = max(
                records,
                key=lambda r: training_domain_validation(r, run.test_envs, prefix),
            )
        else:
            chosen = records[-1]
        if selection == "oracle":
            score = _test_domain_validation(chosen, run.test_envs, prefix)
        else:
            score = training_domain_validation(chosen, run.test_envs, prefix)
        if best is None or score > best[0]:
            best = (score, run, chosen)
    if best is None:
        return None
    _, run, record = best
    return Selected(
        iid=training_domain_validation(record, run.test_envs, prefix),
        ood=test_accuracy(record, run.test_envs, prefix),
        folder=getattr(run, "folder", ""),
        step=record["step"],
    )


def select_in_run(run, prefix=""):
    """The run's checkpoint with the best training-domain validation, or `None`.

    The paper's choice, made in every run before averaging over the settings.
    """
    return select([run], "training_domain", prefix)


def _test_domain_validation(record, test_envs, prefix):
    return float(np.mean([record[f"{prefix}env{i}_out_acc"] for i in test_envs]))
