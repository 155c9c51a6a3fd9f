"""Across runs: the uniform soup of final weights and the ensemble of final models.

The paper compares very large dropout with two ways of combining several
fine-tuned networks: averaging their weights (a uniform "model soup",
Wortsman et al. 2022) and ensembling their outputs. Both combine the
`final.keras` models of the runs of one cell: the runs that share the dataset,
test domain, dropout rate, trial (hence the same in/out splits, so the i.i.d.
validation stays clean) and fixed settings, and differ in the searched
hyperparameters (learning rate, weight decay, head learning-rate factor), as
model soups combine the runs of a hyperparameter search. One combination per
cell, so trials give its error bar like any other method's.

The soup is the uniform mean of every floating-point variable (integer
variables, such as the dropout's seed state, unused at inference, are kept
from one member); the ensemble sums
the members' logits. Both are evaluated on every domain's in and out splits
(the training domains' with the members' augmentation draw where the runs
were evaluated so: `hparams.augment_evaluation`) and returned as
DomainBed-shaped records (`env{i}_in_acc`, ...). The result is cached in
`<cache_dir>/<key>.json`, the key a hash of the members' folder names and
settings, so collecting again reads it instead of loading the models.

Example:

```python
from keras_ldrop.experiments.collect import read_runs
from keras_ldrop.experiments.soups import combine_final_models
runs, _ = read_runs("runs/sweep")
records = combine_final_models(runs[:3], cache_dir="runs/sweep/soups")
records["uniform soup"]["env0_in_acc"]
```
"""

import hashlib
import json
import os

import keras
import numpy as np

import keras_ldrop  # noqa: F401  (registers the classifier's layers for loading)
from keras_ldrop.data import load_domains
from keras_ldrop.training import evaluation

UNIFORM_SOUP = "uniform soup"
FINAL_ENSEMBLE = "ensemble of final models"
FINAL_MODEL = "final.keras"
# Arguments that do not change what a run computes; left out of the cache key.
_KEY_IGNORED_ARGS = ("output_dir", "data_dir", "backend")


class IncompatibleRunsError(ValueError):
    """The final models of a cell do not have the same variables."""


def cache_key(runs):
    """A hash of the members' folder names and their final records' settings."""
    members = []
    for run in sorted(runs, key=lambda run: os.path.basename(run.folder)):
        last = run.records[-1]
        args = {k: v for k, v in last["args"].items() if k not in _KEY_IGNORED_ARGS}
        members.append([os.path.basename(run.folder), last["step"], last["hparams"], args])
    return hashlib.sha256(json.dumps(members, sort_keys=True).encode()).hexdigest()[:16]


def combine_final_models(runs, cache_dir, batch_size=64):
    """Returns `{UNIFORM_SOUP: record, FINAL_ENSEMBLE: record}` for one cell.

    Reads the cache when it holds this cell; otherwise loads the members'
    `final.keras`, evaluates both combinations and writes the cache.

    Args:
        runs: the cell's runs (each with `folder` and `records`).
        cache_dir: the folder of cached results.
        batch_size: evaluation batch size.

    Returns:
        The two records, or `None` when a member has no `final.keras` and
        the cache does not hold the cell.

    Raises:
        IncompatibleRunsError: the members' models differ in their variables.
    """
    runs = sorted(runs, key=lambda run: os.path.basename(run.folder))
    path = os.path.join(cache_dir, f"{cache_key(runs)}.json")
    if os.path.exists(path):
        with open(path) as file:
            cached = json.load(file)
        return {name: cached[name] for name in (UNIFORM_SOUP, FINAL_ENSEMBLE)}
    model_paths = [os.path.join(run.folder, FINAL_MODEL) for run in runs]
    if not all(os.path.exists(model_path) for model_path in model_paths):
        return None
    records = _evaluate(model_paths, runs[0].records[-1], batch_size)
    os.makedirs(cache_dir, exist_ok=True)
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        json.dump(
            {"members": [os.path.basename(run.folder) for run in runs], **records},
            file, indent=1, sort_keys=True,
        )
    os.replace(temporary, path)
    return records


def _evaluation_splits(record):
    args, hparams = record["args"], record["hparams"]
    domains = load_domains(args["dataset"], args.get("data_dir"))
    splits = evaluation.domain_splits(domains, args["holdout_fraction"], args["trial_seed"])
    augment_seeds = {}
    if hparams.get("augment_evaluation"):
        train_envs = [i for i in range(len(domains)) if i not in args["test_envs"]]
        augment_seeds = evaluation.augmented_split_seeds(train_envs, args["seed"])
    return splits, hparams["image_size"], augment_seeds


def _float_variables(model):
    return [v for v in model.weights if "float" in str(v.dtype)]


def _evaluate(model_paths, record, batch_size):
    splits, image_size, augment_seeds = _evaluation_splits(record)
    split_logits = evaluation.SplitPredictor(splits, image_size, batch_size, augment_seeds)
    weight_sums = None
    logit_sums = {}
    for model_path in model_paths:
        model = keras.saving.load_model(model_path)
        variables = _float_variables(model)
        values = [np.array(keras.ops.convert_to_numpy(v), np.float64) for v in variables]
        if weight_sums is None:
            weight_sums = values
            shapes = [value.shape for value in values]
        elif [value.shape for value in values] != shapes:
            raise IncompatibleRunsError(
                f"{model_path} does not have the variables of {model_paths[0]}: "
                "only runs of the same backbone and image size can be averaged."
            )
        else:
            weight_sums = [total + value for total, value in zip(weight_sums, values)]
        logits = split_logits(model)
        for name, value in logits.items():
            logit_sums[name] = logit_sums.get(name, 0.0) + value
    # `model` is the last member: its float variables become the soup's.
    for variable, total in zip(variables, weight_sums):
        variable.assign(np.array(total / len(model_paths), dtype=variable.dtype))
    soup_logits = split_logits(model)
    return {
        UNIFORM_SOUP: evaluation.accuracies(soup_logits, splits),
        FINAL_ENSEMBLE: evaluation.accuracies(logit_sums, splits),
    }
