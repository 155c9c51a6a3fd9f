"""The settings of one fine-tuning run, with the paper's defaults per dataset.

Example:

>>> from keras_ldrop.training.config import FinetuneConfig
>>> config = FinetuneConfig(dataset="vlcs_mini").resolve()
>>> config.rate, config.batch_size, config.momentum
(0.9, 32, 0.9)
"""

import dataclasses
import json
import math
import numbers

from keras_ldrop.data import DatasetSpec, resolve_dataset
from keras_ldrop.data.user_data import dataset_contents, spec_from_contents
from keras_ldrop.layers import validate_rate
from keras_ldrop.offline_presets import OFFLINE_PRESET_NAME

PAPER_BACKBONE = "hf://timm/resnet50.tv2_in1k"
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DISTRIBUTIONS = ("none", "data_parallel")
DATA_SOURCES = ("folder", "tfds")
# Fields that say how a run computes, not what: left out of its identity
# (`config.json`, finetune's default folder hash, the check on resume), so
# that a run can resume on other devices, or read its data from elsewhere.
_EXECUTION_FIELDS = ("distribution", "data_source", "tfds_dir")
# The weight average and the trajectory ensemble start here, as in the paper.
AVERAGING_START_STEP = 300


class ConfigError(ValueError):
    """A setting of the run is invalid; the message names it and its value."""


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """One run: `None` fields take the dataset's (the paper's) default.

    Attributes:
        dataset: a registry name (`keras_ldrop.data.DATASETS`), a user's
            folder of domains or CSV manifest (`keras_ldrop.data.user_data`),
            or a `DatasetSpec`; resolved to the name or the absolute path.
        data_dir: the folder holding the downloaded datasets (registered
            datasets only).
        test_envs: indices of the held-out (test) domains; `()` trains on
            every domain (a final model for a new domain: no o.o.d. estimate).
        rate: dropout rate before the linear head, in [0, 1).
        backbone: anything `build_classifier` accepts; default the paper's
            ResNet-50 (torchvision V2 weights), or the offline
            EfficientNet-Lite0 for the offline datasets.
        image_size: side of the square input images.
        steps: number of updates.
        batch_size: images drawn from EACH training domain per update.
        lr: initial learning rate (default the dataset's first); x0.1 at the
            dataset's drop steps (scaled to `steps` when `steps` differs from
            the dataset's default).
        weight_decay: coupled L2 coefficient.
        momentum: SGD momentum.
        head_lr_multiplier: learning-rate factor of the linear head (default
            the dataset's: 1 as in the paper; 30 for the offline minis).
        checkpoint_freq: updates between evaluations and checkpoints.
        holdout_fraction: share of each domain held out as its out split.
        trial_seed: seeds the in/out splits.
        seed: seeds the weights of the head, dropout and data sampling.
        precision: `float32`, `mixed_bfloat16` or `mixed_float16`.
        freeze_batchnorm: keep BatchNorm statistics frozen.
        average_start: first update of the weight average and the
            trajectory ensemble; default the paper's 300, or the first
            checkpoint when checkpoints come more often.
        augment_evaluation: evaluate the training domains' in and out splits
            with the training augmentation (one draw per image, fixed for the
            run), as DomainBed and the paper do; the test domains are always
            evaluated clean. `False`: every split clean. A `config.json`
            written before this setting existed reads as `False`: its run
            was evaluated clean.
        distribution: `none` (one device) or `data_parallel` (each batch
            split across every device; see `keras_ldrop.training.distribution`).
            Not part of the run's identity: a run may resume with another.
        data_source: `folder` (read the image files) or `tfds` (read the
            dataset's prepared shards in `tfds_dir`, `apps/prepare.py`: the
            same examples, splits and batches; in a multi-process run each
            process decodes only its share). Not part of the run's identity.
        tfds_dir: the TFDS data dir holding the prepared shards (`tfds` only).
        dataset_contents: for a user's dataset, what `resolve` read of it
            (path, domains, classes, files per domain); recorded in
            `config.json`, so that a resume on a changed folder is refused.
    """

    dataset: str | DatasetSpec = "vlcs_mini"
    data_dir: str | None = None
    test_envs: tuple[int, ...] = (0,)
    rate: float | None = None
    backbone: str | None = None
    image_size: int | None = None
    steps: int | None = None
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 1e-4
    momentum: float = 0.9
    head_lr_multiplier: float | None = None
    checkpoint_freq: int | None = None
    holdout_fraction: float = 0.2
    trial_seed: int = 0
    seed: int = 0
    precision: str = "float32"
    freeze_batchnorm: bool = True
    average_start: int | None = None
    augment_evaluation: bool = True
    distribution: str = dataclasses.field(default="none", compare=False)
    data_source: str = dataclasses.field(default="folder", compare=False)
    tfds_dir: str | None = dataclasses.field(default=None, compare=False)
    dataset_contents: dict | None = dataclasses.field(default=None, hash=False)

    def resolve(self):
        """Returns a copy with every default filled in and every value checked.

        Raises:
            ConfigError: a value is invalid (the message names it).
            ValueError: the dataset is unknown, or a user's dataset is not
                laid out as one (`keras_ldrop.data.DatasetLayoutError`).
        """
        spec = self.spec()
        if spec.is_user_data and self.data_dir is not None:
            raise ConfigError(
                f"--data_dir is for the registered datasets; --dataset="
                f"{spec.location} already names the data. Received "
                f"--data_dir={self.data_dir!r}."
            )
        resolved = dataclasses.replace(
            self,
            dataset=spec.location if spec.is_user_data else spec.name,
            dataset_contents=dataset_contents(spec) if spec.is_user_data else None,
            test_envs=tuple(self.test_envs),
            rate=spec.rate if self.rate is None else self.rate,
            backbone=self.backbone or _default_backbone(spec),
            image_size=self.image_size or spec.image_size,
            steps=spec.steps if self.steps is None else self.steps,
            checkpoint_freq=self.checkpoint_freq or spec.checkpoint_freq,
            lr=spec.learning_rates[0] if self.lr is None else self.lr,
            head_lr_multiplier=(
                spec.head_lr_multiplier
                if self.head_lr_multiplier is None
                else self.head_lr_multiplier
            ),
        )
        if resolved.average_start is None and _is_positive_int(
            resolved.checkpoint_freq
        ):
            resolved = dataclasses.replace(
                resolved,
                average_start=min(AVERAGING_START_STEP, resolved.checkpoint_freq),
            )
        resolved._check(spec)
        return resolved

    def _check(self, spec):
        try:
            validate_rate(self.rate)
        except ValueError as error:
            raise ConfigError(f"--rate: {error}") from None
        for name in ("steps", "batch_size", "image_size", "checkpoint_freq"):
            _check_positive_int(name, getattr(self, name))
        _check_positive_int("average_start", self.average_start)
        for name in ("lr", "weight_decay", "momentum", "head_lr_multiplier"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0 or math.isnan(value):
                raise ConfigError(
                    f"--{name} must be a non-negative number; received {value!r}."
                )
        if self.lr == 0:
            raise ConfigError("--lr must be positive; received 0.")
        if not 0 < self.holdout_fraction < 1:
            raise ConfigError(
                "--holdout_fraction must be in (0, 1); received "
                f"{self.holdout_fraction!r}."
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"--precision must be one of {', '.join(PRECISIONS)}; "
                f"received {self.precision!r}."
            )
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(
                f"--distribution must be one of {', '.join(DISTRIBUTIONS)}; "
                f"received {self.distribution!r}."
            )
        if self.data_source not in DATA_SOURCES:
            raise ConfigError(
                f"--data_source must be one of {', '.join(DATA_SOURCES)}; "
                f"received {self.data_source!r}."
            )
        if (self.data_source == "tfds") != (self.tfds_dir is not None):
            raise ConfigError(
                "--tfds_dir names the prepared shards that --data_source=tfds reads, "
                "and only then: received "
                f"--data_source={self.data_source} --tfds_dir={self.tfds_dir}."
            )
        domains = len(spec.domains)
        for env in self.test_envs:
            if not isinstance(env, numbers.Integral) or not 0 <= env < domains:
                raise ConfigError(
                    f"--test_env={env!r} is out of range: {spec.name} has "
                    f"{domains} domains, indices 0-{domains - 1} "
                    f"({', '.join(f'{i}={d}' for i, d in enumerate(spec.domains))})."
                )
        if len(set(self.test_envs)) >= domains:
            raise ConfigError(
                f"--test_env={list(self.test_envs)} leaves no training domain "
                f"among the {domains} of {spec.name}."
            )

    def spec(self):
        """The dataset's `DatasetSpec` (a user's: from `dataset_contents`, once resolved)."""
        if self.dataset_contents is not None:
            return spec_from_contents(self.dataset_contents)
        return resolve_dataset(self.dataset)

    def lr_drop_steps(self):
        """The updates after which the learning rate is multiplied by 0.1.

        The dataset's drop steps (the paper's: half-way for 10k steps; 15k and
        25k of 30k for DomainNet), scaled proportionally when `steps` is not
        the dataset's default.
        """
        spec = self.spec()
        drops = {
            max(1, round(drop * self.steps / spec.steps)) for drop in spec.lr_drop_steps
        }
        return tuple(sorted(drop for drop in drops if drop < self.steps))

    def to_json(self, with_dataset_contents=True):
        """The settings that define the run (all but `distribution`, `data_source`
        and `tfds_dir`).

        Args:
            with_dataset_contents: include what was read of a user's dataset
                (left out where only the settings count, e.g. folder names).
        """
        values = dataclasses.asdict(self)
        for name in _EXECUTION_FIELDS:
            del values[name]
        if not with_dataset_contents:
            del values["dataset_contents"]
        return json.dumps(values, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        values = json.loads(text)
        values["test_envs"] = tuple(values["test_envs"])
        values.setdefault("augment_evaluation", False)
        return cls(**values)


def _default_backbone(spec):
    return OFFLINE_PRESET_NAME if spec.is_offline else PAPER_BACKBONE


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_positive_int(value):
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= 1
    )


def _check_positive_int(name, value):
    if not _is_positive_int(value):
        raise ConfigError(f"--{name} must be a positive integer; received {value!r}.")
