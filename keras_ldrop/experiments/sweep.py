"""The job grid of a sweep: one fine-tuning run per point, in a hashed folder.

A sweep is the Cartesian product of dropout rates, learning rates, weight
decays, head learning-rate factors, test domains (leave one domain out) and
trials, every other setting shared. Each job's folder under the sweep's output
folder is named `<dataset>-<hash>`, the hash of the job's arguments to
`apps/finetune.py`, so the same grid finds the same folders again: a folder
with a `done` file is finished, one without it is incomplete and resumes from
its checkpoint when launched again. The arguments leave out the settings at
their default, so a setting added to `FinetuneConfig` later (with a default)
does not rename the folders of an existing sweep.

Trial `t` uses `trial_seed=t` (the in/out splits) and `seed=t` (head
initialisation, dropout masks, data order), as DomainBed's trials do.

Example:

>>> from keras_ldrop.experiments.sweep import make_jobs, sweep_status
>>> jobs = make_jobs("/tmp/sweep", dataset="vlcs", trials=1, test_envs=[0])
>>> len(jobs)  # rates {0, 0.9} x lr {1e-3, 5e-4} x weight decay {1e-4, 5e-5, 1e-5}
12
>>> sweep_status(jobs)["not launched"]
12
"""

import dataclasses
import hashlib
import itertools
import os
import shutil

from keras_ldrop.data import resolve_dataset
from keras_ldrop.training import FinetuneConfig

# The paper's weight decays and number of trials.
WEIGHT_DECAYS = (1e-4, 5e-5, 1e-5)
TRIALS = 3

DONE = "done"
INCOMPLETE = "incomplete"
NOT_LAUNCHED = "not launched"
STATES = (DONE, INCOMPLETE, NOT_LAUNCHED)

# The `FinetuneConfig` fields a sweep varies (with the dataset, always written).
GRID_FIELDS = (
    "dataset", "test_envs", "rate", "lr", "weight_decay", "head_lr_multiplier",
    "trial_seed", "seed",
)
# `FinetuneConfig` fields whose `apps/finetune.py` flag has another name.
_FLAG_NAMES = {"test_envs": "test_env", "freeze_batchnorm": "freeze_bn"}
# `FinetuneConfig` fields that the app derives itself (no flag).
_DERIVED_FIELDS = ("dataset_contents",)


def run_folder_name(config):
    """`<dataset name>-<first 10 hex digits of the SHA-256 of its finetune flags>`.

    Only the flags of the run's identity count: how a run is computed
    (`--distribution`) does not rename its folder.

    Args:
        config: a resolved `FinetuneConfig`.
    """
    arguments = " ".join(finetune_flags(config, identity_only=True))
    digest = hashlib.sha256(arguments.encode()).hexdigest()[:10]
    return f"{config.spec().short_name}-{digest}"


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of the sweep.

    Attributes:
        config: the run's resolved `FinetuneConfig`.
        folder: the run's folder.
    """

    config: FinetuneConfig
    folder: str

    @property
    def state(self):
        """`"done"`, `"incomplete"` (a folder without `done`) or `"not launched"`."""
        if os.path.exists(os.path.join(self.folder, DONE)):
            return DONE
        if os.path.isdir(self.folder):
            return INCOMPLETE
        return NOT_LAUNCHED

    def command(self, app, python):
        """The command line that runs this job with `apps/finetune.py`.

        See `finetune_flags`. The app writes the settings it resolved to the
        run's `config.json` and refuses a folder holding other settings, so a
        command that disagreed with the job would fail loudly.

        Args:
            app: path of `apps/finetune.py` (or a program with its flags).
            python: the Python interpreter to run it with.
        """
        return [python, app, *finetune_flags(self.config), f"--output_dir={self.folder}"]


def finetune_flags(config, identity_only=False):
    """`--name=value` flags of `apps/finetune.py` that give it `config`.

    The grid's axes are always written; every other field only where it
    differs from the `FinetuneConfig` default, so that a field added to the
    config (with its default) does not need a flag in the app first.

    Args:
        config: a resolved `FinetuneConfig`.
        identity_only: leave out the fields that are not part of the run's
            identity (those with `compare=False`, e.g. `distribution`).
    """
    flags = []
    for field in dataclasses.fields(config):
        if field.name in _DERIVED_FIELDS or (identity_only and not field.compare):
            continue
        name = _FLAG_NAMES.get(field.name, field.name)
        value = getattr(config, field.name)
        if value is None or (field.name not in GRID_FIELDS and value == field.default):
            continue
        if isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no{name}")
        elif isinstance(value, tuple) and not value:
            flags.append(f"--{name}=none")
        elif isinstance(value, tuple):
            flags.extend(f"--{name}={item!r}" for item in value)
        elif isinstance(value, str):
            flags.append(f"--{name}={value}")
        else:
            flags.append(f"--{name}={value!r}")
    return flags


def make_jobs(
    output_dir,
    dataset,
    rates=None,
    lrs=None,
    weight_decays=WEIGHT_DECAYS,
    head_lr_multipliers=None,
    trials=TRIALS,
    test_envs=None,
    **settings,
):
    """The jobs of the grid, trial by trial, without duplicates.

    Args:
        output_dir: the sweep's folder; each job gets a subfolder.
        dataset: a registry name, a user's folder of domains or CSV
            manifest, or a `DatasetSpec` (a user's data is scanned once).
        rates: dropout rates; default 0 (plain fine-tuning) and the dataset's
            rate (0.9; DomainNet 0.5).
        lrs: learning rates; default the dataset's (the paper's) pair.
        weight_decays: coupled L2 coefficients; default the paper's three.
        head_lr_multipliers: learning-rate factors of the head; default the
            `FinetuneConfig` default (the dataset's) alone.
        trials: number of trials (`trial_seed = seed = 0 ... trials - 1`).
        test_envs: held-out domain indices, one per job; default every domain.
        **settings: any other `FinetuneConfig` field, shared by all jobs
            (`data_dir`, `backbone`, `steps`, `image_size`, `batch_size`, ...).

    Raises:
        ConfigError: a setting is invalid (the message names it).
        ValueError: the dataset is unknown, or a grid axis is empty.
    """
    spec = resolve_dataset(dataset)
    # Trials outermost, then test domains: a sweep stopped half-way holds
    # whole trials of the comparison.
    axes = {
        "trial": tuple(range(trials)),
        "test_env": (
            tuple(range(len(spec.domains))) if test_envs is None else tuple(test_envs)
        ),
        "rate": _floats((0.0, spec.rate) if rates is None else rates),
        "lr": _floats(spec.learning_rates if lrs is None else lrs),
        "weight_decay": _floats(weight_decays),
        # `None`: the field is left to `FinetuneConfig`'s default.
        "head_lr_multiplier": (
            (None,) if head_lr_multipliers is None else _floats(head_lr_multipliers)
        ),
    }
    for name, values in axes.items():
        if not values:
            raise ValueError(f"The sweep's {name} axis is empty; give at least one value.")
    jobs = {}
    for trial, test_env, rate, lr, weight_decay, multiplier in itertools.product(
        *axes.values()
    ):
        point = dict(
            dataset=spec,
            rate=rate,
            lr=lr,
            weight_decay=weight_decay,
            test_envs=(test_env,),
            trial_seed=trial,
            seed=trial,
        )
        if multiplier is not None:
            point["head_lr_multiplier"] = multiplier
        config = FinetuneConfig(**point, **settings).resolve()
        folder = os.path.join(os.path.abspath(output_dir), run_folder_name(config))
        jobs.setdefault(folder, Job(config, folder))
    return list(jobs.values())


def _floats(values):
    # Floats, so that `0` and `0.0` give the same settings and the same hash.
    return tuple(float(value) for value in values)


def sweep_status(jobs):
    """Returns `{state: number of jobs}` for the three states, in order."""
    counts = {state: 0 for state in STATES}
    for job in jobs:
        counts[job.state] += 1
    return counts


def delete_incomplete(jobs):
    """Removes the folders of the incomplete jobs; returns those jobs."""
    incomplete = [job for job in jobs if job.state == INCOMPLETE]
    for job in incomplete:
        shutil.rmtree(job.folder)
    return incomplete
