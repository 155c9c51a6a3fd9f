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

With `selection="paper"` (the paper's estimator) the first three methods are
not selected among the cell's runs but averaged over them: each run at its
checkpoint with the best training-domain validation, then the mean over the
cell's runs, one per hyperparameter setting (`paper_run_scores`; a cell that
lacks a setting of its grid is left out, with a warning).

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
import math
import os
import warnings

import numpy as np

from keras_ldrop.data import resolve_dataset
from keras_ldrop.experiments import domainbed_records, soups
from keras_ldrop.experiments.selection import (
    PAPER,
    check_selection,
    select,
    select_in_run,
)
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
# What the runs of a cell differ in: one setting of these per run.
SEARCHED_HYPERPARAMETERS = ("lr", "weight_decay", "head_lr_multiplier")
# Incomplete cells named in the paper estimator's warning.
_NAMED_INCOMPLETE_CELLS = 5


@dataclasses.dataclass(frozen=True, order=True)
class Setting:
    """What the runs of one table share besides the test domain and rate."""

    dataset: str
    backbone: str
    image_size: int
    steps: int
    augment_evaluation: bool

    @property
    def label(self):
        evaluated = "with augmentation" if self.augment_evaluation else "clean"
        return (
            f"{self.dataset}, backbone {self.backbone}, {self.image_size} px, "
            f"{self.steps} steps, training domains evaluated {evaluated}"
        )


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished run: its folder and its records, in step order.

    The records are keras_ldrop's, whoever wrote them (see
    `keras_ldrop.experiments.domainbed_records`): `args.dataset` is our name
    for the dataset, `hparams.rate` the dropout rate.
    """

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
            # Our runs from before the setting existed were evaluated clean.
            bool(hparams.get("augment_evaluation", False)),
        )

    @property
    def rate(self):
        return float(self._last["hparams"]["rate"])

    @property
    def test_envs(self):
        return tuple(self._last["args"]["test_envs"])

    @property
    def trial_seed(self):
        """The trial: `args.trial_seed`, or `(trial_seed, seed)` for the authors' runs."""
        return domainbed_records.trial_of(self._last["args"])


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
class RunScore:
    """One method's accuracies in one run, at the run's checkpoint with the
    best training-domain validation (the paper's choice).

    `hyperparameters` is the run's setting: `(name, value)` pairs of
    `SEARCHED_HYPERPARAMETERS`.
    """

    setting: Setting
    method: str
    rate: float
    test_envs: tuple
    trial_seed: int
    hyperparameters: tuple
    folder: str
    iid: float
    ood: float

    @property
    def cell(self):
        """`(setting, method, rate, test_envs, trial_seed)`: a `Score`'s key."""
        return (self.setting, self.method, self.rate, self.test_envs, self.trial_seed)

    @property
    def grid(self):
        """`(setting, method, rate)`: the cells that share one grid of settings."""
        return (self.setting, self.method, self.rate)


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

    Reads the run folders of keras_ldrop, DomainBed and the paper's authors
    (`keras_ldrop.experiments.domainbed_records`); a folder whose records
    cannot be compared is left out with a one-line warning naming it. Runs
    without a `done` file are not read (their records would compete in model
    selection with a shorter trajectory); their folders are returned.

    Raises:
        FileNotFoundError: `input_dir` is not a folder.
    """
    if not os.path.isdir(input_dir):
        raise FileNotFoundError(f"--input_dir={input_dir} is not a folder.")
    finished, unfinished = [], []
    for folder, _, names in sorted(os.walk(input_dir)):
        if domainbed_records.RESULTS in names:
            (finished if "done" in names else unfinished).append(folder)
    runs = [
        Run(folder, records)
        for folder, records in domainbed_records.read_finished_runs(finished)
    ]
    return runs, unfinished


def collect_scores(runs, selection="training_domain", soup_cache_dir=None):
    """Scores of every method in every cell.

    Args:
        runs: `Run`s from `read_runs`.
        selection: `training_domain`, `oracle`, `last` or `paper` (the
            paper's estimator: the mean over the cell's runs of
            `paper_run_scores`, no selection among them).
        soup_cache_dir: the soups' cache folder; `None` leaves the soups out.

    Returns:
        A list of `Score`s: the trajectory methods' in cell order, then the
        soups'.

    Raises:
        ValueError: an unknown `selection`; with `paper`, two runs of one
            cell with the same hyperparameters.
    """
    check_selection(selection)
    cells = _cells(runs)
    if selection == PAPER:
        scores = _mean_over_settings(_complete_grids(_per_run_scores(cells)))
    else:
        scores = _selected_scores(cells, selection)
    if soup_cache_dir is not None:
        scores += _soup_scores(cells, soup_cache_dir)
    return scores


def paper_run_scores(runs):
    """Every run's `RunScore` per trajectory method, from the complete cells.

    Each run's checkpoint with the best training-domain validation
    (`select_in_run`). The grid of a setting, method and rate is every
    hyperparameter setting its runs hold over all test domains and trials; a
    cell that lacks one is left out, with a warning naming it and what it
    lacks, so that every mean is over the same settings.

    Raises:
        ValueError: two runs of one cell with the same hyperparameters.
    """
    return _complete_grids(_per_run_scores(_cells(runs)))


def _cells(runs):
    """`{(setting, rate, test_envs, trial_seed): [Run]}`, without the runs that
    held no domain out (named in a warning)."""
    trained_on_every_domain = [run.folder for run in runs if not run.test_envs]
    if trained_on_every_domain:
        warnings.warn(
            f"Left out {len(trained_on_every_domain)} run(s) that held no domain "
            f"out (no o.o.d. accuracy to compare): {trained_on_every_domain}",
            stacklevel=3,
        )
    cells = {}
    for run in (run for run in runs if run.test_envs):
        key = (run.setting, run.rate, run.test_envs, run.trial_seed)
        cells.setdefault(key, []).append(run)
    return {key: cells[key] for key in sorted(cells)}


def _selected_scores(cells, selection):
    scores = []
    for (setting, rate, test_envs, trial_seed), cell in cells.items():
        for method, prefix in _TRAJECTORY_PREFIXES:
            selected = select(cell, selection, prefix)
            if selected is not None:
                scores.append(
                    Score(setting, method, rate, test_envs, trial_seed,
                          selected.iid, selected.ood)
                )
    return scores


def _soup_scores(cells, soup_cache_dir):
    scores = []
    missing_models = 0
    for (setting, rate, test_envs, trial_seed), cell in cells.items():
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
            stacklevel=3,
        )
    return scores


def _hyperparameters(run):
    hparams = run.records[-1]["hparams"]
    return tuple((name, hparams.get(name)) for name in SEARCHED_HYPERPARAMETERS)


def _describe_hyperparameters(hyperparameters):
    return " ".join(f"{name}={value}" for name, value in hyperparameters)


def _per_run_scores(cells):
    run_scores = []
    for (setting, rate, test_envs, trial_seed), cell in cells.items():
        folder_of = {}
        for run in cell:
            hyperparameters = _hyperparameters(run)
            if hyperparameters in folder_of:
                raise ValueError(
                    f"{folder_of[hyperparameters]} and {run.folder} are runs of one "
                    f"cell with the same {_describe_hyperparameters(hyperparameters)}: "
                    "the paper's estimator needs one run per hyperparameter setting."
                )
            folder_of[hyperparameters] = run.folder
            for method, prefix in _TRAJECTORY_PREFIXES:
                chosen = select_in_run(run, prefix)
                if chosen is not None:
                    run_scores.append(
                        RunScore(setting, method, rate, test_envs, trial_seed,
                                 hyperparameters, run.folder, chosen.iid, chosen.ood)
                    )
    return run_scores


def _complete_grids(run_scores):
    grids, cells = {}, {}
    for score in run_scores:
        grids.setdefault(score.grid, set()).add(score.hyperparameters)
        cells.setdefault(score.cell, []).append(score)
    complete, incomplete = [], []
    for members in cells.values():
        missing = grids[members[0].grid] - {m.hyperparameters for m in members}
        if missing:
            incomplete.append(_describe_incomplete(members[0], missing))
        else:
            complete.extend(members)
    if incomplete:
        named = incomplete[:_NAMED_INCOMPLETE_CELLS]
        more = len(incomplete) - len(named)
        warnings.warn(
            f"The paper's estimator left out {len(incomplete)} cell(s) that lack a "
            f"hyperparameter setting of their grid: {'; '.join(named)}"
            + (f"; and {more} more." if more else "."),
            stacklevel=3,
        )
    return complete


def _describe_incomplete(score, missing):
    lacking = ", ".join(sorted(_describe_hyperparameters(h) for h in missing))
    return (
        f"{score.setting.dataset} {score.method} rate {score.rate:g} test domain "
        f"{list(score.test_envs)} trial {score.trial_seed} lacks {lacking}"
    )


def _mean_over_settings(run_scores):
    cells = {}
    for score in run_scores:
        cells.setdefault(score.cell, []).append(score)
    return [
        Score(*key,
              iid=float(np.mean([s.iid for s in members])),
              ood=float(np.mean([s.ood for s in members])))
        for key, members in cells.items()
    ]


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
