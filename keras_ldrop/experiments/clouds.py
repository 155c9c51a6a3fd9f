"""The paper's clouds: one i.i.d./o.o.d. point per choice of one
hyperparameter setting for each test domain.

For one setting (dataset, backbone, image size, steps), method and dropout
rate, the paper's estimator gives each test domain `d` and hyperparameter
setting `h` one pair: the mean over trials of the runs' accuracies, each run at
its checkpoint with the best training-domain validation
(`collect.paper_run_scores`, complete cells only). A point of the cloud
chooses one setting `h_d` for every test domain and averages over the test
domains:

    i.i.d. = mean_d iid[d, h_d],   o.o.d. = mean_d ood[d, h_d]

so a cloud has `H ** D` points for `H` settings and `D` test domains (the
paper: (2 learning rates x 3 weight decays) ** 4 domains = 1296). Its centroid,
`mean_d mean_h`, is the mean over all of them, the `Avg` the paper's estimator
reports. Above `max_points` combinations the cloud keeps a uniform random
sample of `max_points` of them (each test domain's setting drawn independently
with a fixed seed, so with replacement); the centroid is always the exact mean
over every combination.

Example:

>>> from keras_ldrop.experiments.collect import RunScore, Setting
>>> from keras_ldrop.experiments.clouds import clouds
>>> setting = Setting("vlcs", "resnet", 224, 10000, augment_evaluation=True)
>>> scores = [
...     RunScore(setting, "fine-tuning", 0.9, (env,), 0, (("lr", lr),), "", iid, ood)
...     for env, lr, iid, ood in [(0, 1e-3, .8, .6), (0, 5e-4, .9, .7),
...                               (1, 1e-3, .7, .5), (1, 5e-4, .6, .4)]
... ]
>>> (cloud,) = clouds(scores)
>>> cloud.combinations, cloud.points.round(3).tolist()
(4, [[0.75, 0.55], [0.8, 0.6], [0.7, 0.5], [0.75, 0.55]])
>>> [round(value, 3) for value in cloud.centroid]
[0.75, 0.55]
"""

import dataclasses
import warnings

import numpy as np

from keras_ldrop.experiments.collect import METHODS

# Points drawn per cloud at most; the paper's 1296 are all drawn.
MAX_POINTS = 5000
_SAMPLE_SEED = 0


@dataclasses.dataclass(frozen=True, eq=False)
class Cloud:
    """The cloud of one method at one rate of one setting.

    Attributes:
        setting: the runs' shared `collect.Setting`.
        method: the method's name.
        rate: the dropout rate.
        test_columns: the test domains, in order.
        hyperparameters: the grid's settings, in the order of `choices`.
        choices: int array `(points, test domains)`: each point's setting index
            per test domain.
        points: float array `(points, 2)`: each point's i.i.d. and o.o.d.
            accuracy, fractions.
        combinations: `len(hyperparameters) ** len(test_columns)`.
        centroid: `(i.i.d., o.o.d.)`, the mean over every combination.
    """

    setting: object
    method: str
    rate: float
    test_columns: tuple
    hyperparameters: tuple
    choices: np.ndarray
    points: np.ndarray
    combinations: int
    centroid: tuple

    @property
    def sampled(self):
        """True when the points are a sample of the combinations."""
        return len(self.points) < self.combinations


def clouds(run_scores, max_points=MAX_POINTS):
    """The cloud of every setting, method and rate.

    The test domains of a setting are those of its scores (complete cells);
    a method and rate that lacks one of them has no cloud (a warning names it).

    Args:
        run_scores: `RunScore`s from `collect.paper_run_scores`.
        max_points: the most points a cloud keeps; at least 1.

    Returns:
        `Cloud`s sorted by setting, method (in `collect.METHODS` order), rate.

    Raises:
        ValueError: `max_points` below 1, or test domains with different
            settings (scores not from `collect.paper_run_scores`).
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1; received {max_points}.")
    columns = _test_columns(run_scores)
    grids = {}
    for score in run_scores:
        grids.setdefault(score.grid, []).append(score)
    result, left_out = [], []
    for grid in sorted(grids, key=_grid_order):
        means = _trial_means(grids[grid])
        setting, method, rate = grid
        missing = [list(c) for c in columns[setting] if c not in means]
        if missing:
            left_out.append(f"{setting.dataset} {method} rate {rate:g} (test domains {missing})")
            continue
        result.append(_cloud(grid, columns[setting], means, max_points))
    if left_out:
        warnings.warn(
            "No cloud where a test domain has no complete cell: " + "; ".join(left_out),
            stacklevel=2,
        )
    return result


def _test_columns(run_scores):
    columns = {}
    for score in run_scores:
        columns.setdefault(score.setting, set()).add(score.test_envs)
    return {setting: tuple(sorted(found)) for setting, found in columns.items()}


def _grid_order(grid):
    setting, method, rate = grid
    order = METHODS.index(method) if method in METHODS else len(METHODS)
    return setting, order, method, rate


def _trial_means(scores):
    """`{test_envs: {hyperparameters: (iid, ood)}}`, each the mean over trials."""
    pairs = {}
    for score in scores:
        by_setting = pairs.setdefault(score.test_envs, {})
        by_setting.setdefault(score.hyperparameters, []).append((score.iid, score.ood))
    return {
        column: {h: tuple(np.mean(values, axis=0)) for h, values in by_setting.items()}
        for column, by_setting in pairs.items()
    }


def _cloud(grid, columns, means, max_points):
    settings = sorted(means[columns[0]], key=_setting_order)
    if any(set(means[column]) != set(settings) for column in columns):
        raise ValueError(
            f"The test domains of {grid[0].dataset} {grid[1]} rate {grid[2]:g} have "
            "different hyperparameter settings: build clouds from "
            "collect.paper_run_scores, which keeps complete cells only."
        )
    iid = np.array([[means[column][h][0] for h in settings] for column in columns])
    ood = np.array([[means[column][h][1] for h in settings] for column in columns])
    choices = _choices(len(settings), len(columns), max_points)
    domains = np.arange(len(columns))
    points = np.stack(
        [iid[domains, choices].mean(axis=1), ood[domains, choices].mean(axis=1)], axis=1
    )
    return Cloud(
        *grid, columns, tuple(settings), choices, points,
        len(settings) ** len(columns), (float(iid.mean()), float(ood.mean())),
    )


def _setting_order(hyperparameters):
    """Numerical order of the values; a missing value (`None`) last."""
    return tuple((value is None, value or 0) for _, value in hyperparameters)


def _choices(settings, domains, max_points):
    """Every combination of one setting per domain, or a sample of `max_points`."""
    if settings**domains <= max_points:
        return np.indices((settings,) * domains).reshape(domains, -1).T
    rng = np.random.default_rng(_SAMPLE_SEED)
    return rng.integers(0, settings, size=(max_points, domains))
