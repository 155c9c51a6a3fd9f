"""Reads a sweep's records and compares the methods, mean +- standard error.

Every finished run folder (a `results.jsonl` and a `done` file) under the input
folder is read. Runs are grouped into cells: same setting (dataset, backbone,
image size, steps), dropout rate, test domain and trial; the searched
hyperparameters vary inside a cell. Each cell gives one score (i.i.d. and
o.o.d. accuracy) per method:

- `fine-tuning`: the fine-tuned model itself (plain fine-tuning at rate 0,
  very large dropout at rate 0.9), chosen by the model selection;
- `weight averaging`: the uniform average of the weights along the
  trajectory (the runs' `average_` records), chosen likewise;
- `trajectory ensemble`: the ensemble of the checkpoints along the trajectory
  (`ensemble_` records), chosen likewise;
- `uniform soup` and `ensemble of final models`: the cell's final models
  combined across runs (see `soups`), no selection.

`summarize` turns the scores into one table per setting: a row per method and
rate, a column per test domain plus `Avg`, each cell the mean and standard
error (sample standard deviation / sqrt(n)) over trials. `Avg` is, as in
DomainBed, the mean over the test domains within each trial, then over the
trials that have every test domain.

Example:

>>> from keras_ldrop.experiments.collect import Estimate
>>> estimate = Estimate.of([0.5, 0.7, 0.9])
>>> round(estimate.mean, 6), round(estimate.stderr, 6), estimate.count
(0.7, 0.11547, 3)
"""

import dataclasses
import functools
import json
import math
import os
import warnings

import numpy as np

from keras_ldrop.data import resolve_dataset
from keras_ldrop.experiments import soups
from keras_ldrop.experiments.selection import check_selection, select
from keras_ldrop.training.evaluation import (
    AVERAGE_PREFIX,
    ENSEMBLE_PREFIX,
    test_accuracy,
    training_domain_validation,
)

FINE_TUNING = "fine-tuning"
WEIGHT_AVERAGING = "weight averaging"
TRAJECTORY_ENSEMBLE = "trajectory ensemble"
METHODS = (
    FINE_TUNING,
    WEIGHT_AVERAGING,
    TRAJECTORY_ENSEMBLE,
    soups.UNIFORM_SOUP,
    soups.FINAL_ENSEMBLE,
)
_TRAJECTORY_PREFIXES = (
    (FINE_TUNING, ""),
    (WEIGHT_AVERAGING, AVERAGE_PREFIX),
    (TRAJECTORY_ENSEMBLE, ENSEMBLE_PREFIX),
)
AVERAGE_COLUMN = "Avg"
SOUP_CACHE = "soups"


@dataclasses.dataclass(frozen=True, order=True)
class Setting:
    """What the runs of one table share besides the test domain and rate."""

    dataset: str
    backbone: str
    image_size: int
    steps: int

    @property
    def label(self):
        return (
            f"{self.dataset}, backbone {self.backbone}, {self.image_size} px, "
            f"{self.steps} steps"
        )


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished run: its folder and its records, in step order."""

    folder: str
    records: tuple

    @property
    def _last(self):
        return self.records[-1]

    @property
    def setting(self):
        hparams, args = self._last["hparams"], self._last["args"]
        return Setting(
            args["dataset"],
            str(hparams.get("backbone")),
            hparams.get("image_size") or 0,
            args.get("steps") or self._last["step"],
        )

    @property
    def rate(self):
        return float(self._last["hparams"]["rate"])

    @property
    def test_envs(self):
        return tuple(self._last["args"]["test_envs"])

    @property
    def trial_seed(self):
        return self._last["args"]["trial_seed"]


@dataclasses.dataclass(frozen=True)
class Score:
    """One method's accuracies in one cell."""

    setting: Setting
    method: str
    rate: float
    test_envs: tuple
    trial_seed: int
    iid: float
    ood: float


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Mean and standard error over `count` trials (`stderr` is None for one)."""

    mean: float
    stderr: float | None
    count: int

    @classmethod
    def of(cls, values):
        values = np.asarray(values, dtype=np.float64)
        stderr = (
            float(np.std(values, ddof=1) / math.sqrt(len(values)))
            if len(values) > 1
            else None
        )
        return cls(float(np.mean(values)), stderr, len(values))


@dataclasses.dataclass(frozen=True)
class Row:
    """One method at one rate: `{column: Estimate}` for o.o.d. and i.i.d."""

    method: str
    rate: float
    ood: dict
    iid: dict


@dataclasses.dataclass(frozen=True)
class Summary:
    """The table of one setting.

    Attributes:
        setting: the runs' shared `Setting`.
        columns: the test-domain tuples, in order, then `AVERAGE_COLUMN`.
        rows: `Row`s by method (in `METHODS` order), then rate.
    """

    setting: Setting
    columns: tuple
    rows: tuple

    def column_label(self, column):
        """A test domain's name (`+`-joined for several), or `Avg`."""
        if column == AVERAGE_COLUMN:
            return AVERAGE_COLUMN
        spec = _dataset_spec(self.setting.dataset)
        return "+".join(
            spec.domains[i] if spec and i < len(spec.domains) else f"env{i}"
            for i in column
        )


@functools.lru_cache(maxsize=None)
def _dataset_spec(dataset):
    """The dataset's spec for naming its domains, or `None` when it cannot be read."""
    try:
        return resolve_dataset(dataset)
    except (ValueError, OSError):
        return None


def read_runs(input_dir):
    """Returns `(runs, unfinished folders)` for every `results.jsonl` below `input_dir`.

    Runs without a `done` file are not read (their records would compete in
    model selection with a shorter trajectory); their folders are returned.

    Raises:
        FileNotFoundError: `input_dir` is not a folder.
    """
    if not os.path.isdir(input_dir):
        raise FileNotFoundError(f"--input_dir={input_dir} is not a folder.")
    runs, unfinished = [], []
    for folder, _, names in sorted(os.walk(input_dir)):
        if "results.jsonl" not in names:
            continue
        if "done" not in names:
            unfinished.append(folder)
            continue
        with open(os.path.join(folder, "results.jsonl")) as file:
            records = [json.loads(line) for line in file if line.strip()]
        if records:
            runs.append(Run(folder, tuple(records)))
    return runs, unfinished


def collect_scores(runs, selection="training_domain", soup_cache_dir=None):
    """Scores of every method in every cell.

    Args:
        runs: `Run`s from `read_runs`.
        selection: `training_domain`, `oracle` or `last`.
        soup_cache_dir: the soups' cache folder; `None` leaves the soups out.

    Returns:
        A list of `Score`s, in cell order.
    """
    check_selection(selection)
    trained_on_every_domain = [run.folder for run in runs if not run.test_envs]
    if trained_on_every_domain:
        warnings.warn(
            f"Left out {len(trained_on_every_domain)} run(s) that held no domain "
            f"out (no o.o.d. accuracy to compare): {trained_on_every_domain}",
            stacklevel=2,
        )
    cells = {}
    for run in (run for run in runs if run.test_envs):
        key = (run.setting, run.rate, run.test_envs, run.trial_seed)
        cells.setdefault(key, []).append(run)
    scores = []
    missing_models = 0
    for key in sorted(cells):
        cell = cells[key]
        setting, rate, test_envs, trial_seed = key
        for method, prefix in _TRAJECTORY_PREFIXES:
            selected = select(cell, selection, prefix)
            if selected is not None:
                scores.append(
                    Score(setting, method, rate, test_envs, trial_seed,
                          selected.iid, selected.ood)
                )
        if soup_cache_dir is None:
            continue
        combined = soups.combine_final_models(cell, soup_cache_dir)
        if combined is None:
            missing_models += 1
            continue
        for method, record in combined.items():
            scores.append(
                Score(setting, method, rate, test_envs, trial_seed,
                      training_domain_validation(record, test_envs),
                      test_accuracy(record, test_envs))
            )
    if missing_models:
        warnings.warn(
            f"Soups and final-model ensembles left out of {missing_models} "
            "cell(s): a run has no final.keras and no cached result.",
            stacklevel=2,
        )
    return scores


def summarize(scores):
    """One `Summary` per setting, sorted by setting."""
    by_setting = {}
    for score in scores:
        by_setting.setdefault(score.setting, []).append(score)
    return [_summary(setting, by_setting[setting]) for setting in sorted(by_setting)]


def _summary(setting, scores):
    test_columns = tuple(sorted({score.test_envs for score in scores}))
    rows = []
    order = {method: index for index, method in enumerate(METHODS)}
    for method, rate in sorted(
        {(score.method, score.rate) for score in scores},
        key=lambda pair: (order.get(pair[0], len(order)), pair[0], pair[1]),
    ):
        chosen = [s for s in scores if (s.method, s.rate) == (method, rate)]
        rows.append(
            Row(
                method,
                rate,
                ood=_estimates(chosen, test_columns, "ood"),
                iid=_estimates(chosen, test_columns, "iid"),
            )
        )
    return Summary(setting, test_columns + (AVERAGE_COLUMN,), tuple(rows))


def _estimates(scores, test_columns, metric):
    estimates = {}
    per_trial = {}
    for column in test_columns:
        values = [getattr(s, metric) for s in scores if s.test_envs == column]
        if values:
            estimates[column] = Estimate.of(values)
        for s in scores:
            if s.test_envs == column:
                per_trial.setdefault(s.trial_seed, {})[column] = getattr(s, metric)
    complete = [
        np.mean([values[column] for column in test_columns])
        for _, values in sorted(per_trial.items())
        if len(values) == len(test_columns)
    ]
    if complete:
        estimates[AVERAGE_COLUMN] = Estimate.of(complete)
    return estimates
