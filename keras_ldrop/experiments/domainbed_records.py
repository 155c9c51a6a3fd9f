"""DomainBed's run records, both ways: ours for its tools, its runs for ours.

A run folder holds `results.jsonl` (one JSON record per evaluation: `step`,
`env{i}_in_acc`, `env{i}_out_acc`, `hparams`, `args`) and, once finished,
`done`. DomainBed's reporting groups records by `args.trial_seed`,
`args.dataset`, `args.algorithm` and each of `args.test_envs`, then into runs
by `args.hparams_seed`. So our runs write (`keras_ldrop.training.loop`):
`args.dataset` DomainBed's class name (`VLCS`, `PACS`, `OfficeHome`,
`TerraIncognita`, `DomainNet`, `RotatedMNIST`, `ColoredMNIST`), or our name
for a dataset DomainBed lacks (the minis, a user's folder: its tables skip
them); `args.keras_ldrop_dataset` our name always; `args.algorithm` `ERM` at
rate 0, else `LargeDropout(<rate>)`; `args.hparams_seed` a hash of `hparams`
but the rate, the steps and the seed. One of DomainBed's groups is then one
of our cells, and one `hparams_seed` one run.

The other way, `read_finished_runs` reads the run folders of three writers
as keras_ldrop's records (what `keras_ldrop.experiments.collect` reads):

- keras_ldrop (`hparams.rate` present): as written, except that
  `args.dataset` is our name again (`args.keras_ldrop_dataset`), so that old
  and new runs of one dataset share a table.
- DomainBed's `train.py` (`args.algorithm`, no `hparams.rate`): `ERM` runs
  only, each with one test domain. The rate is `hparams.resnet_dropout`
  (`vit_dropout` for a ViT), the dropout DomainBed applies to the features
  before the linear head, as the paper does; 0 on the MNIST sets, whose CNN
  has no dropout. `step` becomes the count of updates done (DomainBed writes
  the index of the last one). `hparams.backbone` names DomainBed's network,
  so PyTorch runs form their own tables: model selection never picks across
  implementations.
- The authors' fork of DomainBed (`domainbed/scripts/trainv2.py` of
  TjuJianyu/verylarge_dropout; its `args` have `outsplit_noaug`): as
  DomainBed's, the rate from `hparams.resnet_dropout` (its head's dropout),
  `hparams.lastlrfac` as `head_lr_multiplier`, and `hparams.augment_evaluation`
  false where `outsplit_noaug` evaluated the training domains' out splits clean
  (DomainBed's, and the fork's default, evaluate them with augmentation).
  Its `ensemble<K>_results.jsonl` (summed logits of the checkpoints from step
  K = `hparams.ma_start_iter` on) become the `ensemble_` accuracies (our
  trajectory ensemble) and its `swa<K>_results.jsonl` (weights averaged at
  every step from K on) the `average_` ones (our weight averaging), both
  from step K on. Its README repeats a trial by `--seed` at the default
  `--trial_seed=0`, so its trial is the pair `(trial_seed, seed)`.

A run that is none of these, or that none of our methods describe (another
DomainBed algorithm, several test domains, the fork's backbone
regularizers), is left out and named in a one-line warning. So is the fork's
weight average of a resumed run (the fork restarts the average on resume)
or of one whose BatchNorm statistics were not frozen (its average keeps the
pretrained statistics).

Example:

>>> record = {"step": 4, "env0_in_acc": 0.5, "env0_out_acc": 0.5,
...           "env1_in_acc": 0.7, "env1_out_acc": 0.6,
...           "hparams": {"resnet_dropout": 0.5, "resnet18": False},
...           "args": {"dataset": "VLCS", "algorithm": "ERM", "test_envs": [0],
...                    "trial_seed": 0, "seed": 7, "hparams_seed": 3, "steps": 5}}
>>> (ours,) = as_our_records([record])
>>> ours["step"], ours["hparams"]["rate"], ours["args"]["dataset"]
(5, 0.5, 'vlcs')
>>> ours["hparams"]["backbone"]
'DomainBed torchvision resnet50'
"""

import json
import os
import warnings

from keras_ldrop.data.registry import from_domainbed_name
from keras_ldrop.training.evaluation import AVERAGE_PREFIX, ENSEMBLE_PREFIX

RESULTS = "results.jsonl"
# DomainBed's datasets of 28 px images, which its MNIST CNN (no dropout) reads.
SMALL_IMAGE_DATASETS = ("Debug28", "RotatedMNIST", "ColoredMNIST")
# An argument only the authors' `trainv2.py` has.
AUTHORS_ARG = "outsplit_noaug"
# What the authors' `trainv2.py` prints to `out.txt` when it resumes a run.
AUTHORS_RESUME_LINE = "load swa (weight average) model dict"
_REQUIRED = ("step", "args.dataset", "args.test_envs", "args.trial_seed", "hparams.rate")


class UnreadableRunError(ValueError):
    """A run folder whose records cannot be compared (the message says why)."""


def read_finished_runs(folders):
    """Returns `(folder, records)` for every folder whose records can be read.

    The others are left out, and the fork's weight averages that are not
    ours: one warning line per reason, naming the folders.

    Args:
        folders: finished run folders (each with `results.jsonl` and `done`).
    """
    runs = []
    left_out, averages_left_out = {}, {}
    for folder in folders:
        try:
            records, unsound_average = _read_run(folder)
        except UnreadableRunError as error:
            left_out.setdefault(str(error), []).append(folder)
            continue
        if unsound_average:
            averages_left_out.setdefault(unsound_average, []).append(folder)
        runs.append((folder, records))
    for heading, reasons in (
        ("Left out {} run folder(s)", left_out),
        ("Weight averaging left out of {} run(s) of the authors' code", averages_left_out),
    ):
        for reason, names in reasons.items():
            warnings.warn(
                f"{heading.format(len(names))}: {reason}: {', '.join(names)}",
                stacklevel=2,
            )
    return runs


def read_records(folder):
    """The JSON records of `folder/results.jsonl`, in file order.

    Raises:
        UnreadableRunError: a line is not a JSON object.
    """
    return _read_jsonl(os.path.join(folder, RESULTS))


def as_our_records(records):
    """A run's records (keras_ldrop's, DomainBed's or the fork's) as keras_ldrop's.

    Returns:
        A tuple of new records in step order.

    Raises:
        UnreadableRunError: the records are none of the three writers', or
            describe none of our methods.
    """
    if not records:
        raise UnreadableRunError(f"{RESULTS} holds no record")
    _check_fields(records, ("step", "args", "hparams"))
    if all("rate" in record["hparams"] for record in records):
        ours = [_with_our_dataset(record) for record in records]
    elif all("algorithm" in record["args"] for record in records):
        ours = _from_domainbed(records)
    else:
        raise UnreadableRunError(
            "its records are neither keras_ldrop's (hparams.rate) nor "
            "DomainBed's (args.algorithm)"
        )
    _check_fields(ours, _REQUIRED)
    return tuple(sorted(ours, key=lambda record: record["step"]))


def is_authors_run(records):
    """Whether `records` (from `as_our_records`) come from the authors' fork."""
    return AUTHORS_ARG in records[-1]["args"]


def with_authors_trajectories(folder, records):
    """Adds the fork's trajectory ensemble and weight average to its records.

    Args:
        folder: the fork's run folder.
        records: its records, from `as_our_records`.

    Returns:
        `(records, why the weight average was left out or None)`; the
        records are new, with `ensemble_` and `average_` accuracies from
        step `hparams.ma_start_iter` on.

    Raises:
        UnreadableRunError: a line of the fork's logs is not a JSON object.
    """
    hparams = records[-1]["hparams"]
    start = hparams.get("ma_start_iter", 300)
    logs = {ENSEMBLE_PREFIX: f"ensemble{start}_{RESULTS}"}
    unsound_average = _unsound_weight_average(folder, hparams)
    if not unsound_average:
        logs[AVERAGE_PREFIX] = f"swa{start}_{RESULTS}"
    by_step = {record["step"]: dict(record) for record in records}
    for prefix, name in logs.items():
        path = os.path.join(folder, name)
        if os.path.exists(path):
            _add_accuracies(by_step, _read_jsonl(path), prefix, start)
    return tuple(by_step.values()), unsound_average


def trial_of(args):
    """A run's trial: `args.trial_seed`; `(trial_seed, seed)` for the authors' runs.

    >>> trial_of({"trial_seed": 0, "seed": 2})
    0
    >>> trial_of({"trial_seed": 0, "seed": 2, AUTHORS_ARG: 0})
    (0, 2)
    """
    if AUTHORS_ARG in args:
        return (args["trial_seed"], args["seed"])
    return args["trial_seed"]


def _read_run(folder):
    """`(records, why the fork's weight average was left out or None)`."""
    records = as_our_records(read_records(folder))
    if is_authors_run(records):
        return with_authors_trajectories(folder, records)
    return records, None


def _read_jsonl(path):
    records = []
    with open(path) as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                raise UnreadableRunError(
                    f"{os.path.basename(path)} line {number} is not a JSON object"
                )
            records.append(record)
    return records


def _check_fields(records, fields):
    for number, record in enumerate(records, 1):
        for field in fields:
            value = record
            for key in field.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                raise UnreadableRunError(f"record {number} has no {field}")


def _with_our_dataset(record):
    args = record["args"]
    if "keras_ldrop_dataset" not in args:
        return record
    return {**record, "args": {**args, "dataset": args["keras_ldrop_dataset"]}}


def _from_domainbed(records):
    args, hparams = records[-1]["args"], records[-1]["hparams"]
    is_authors = AUTHORS_ARG in args
    if args["algorithm"] != "ERM":
        raise UnreadableRunError(
            f"DomainBed algorithm {args['algorithm']} is none of our methods "
            "(ERM is: fine-tuning, at the rate hparams.resnet_dropout)"
        )
    if len(args.get("test_envs") or ()) != 1:
        raise UnreadableRunError(
            "DomainBed runs with other than one test domain (records for its "
            "leave-one-domain-out selection, which collect_results does not do)"
        )
    if is_authors and _has_backbone_regularizer(hparams):
        raise UnreadableRunError(
            "the authors' runs with stochastic depth or dropout inside the "
            "backbone (hparams.stodepth, dropout_rate_per_group) are none of our methods"
        )
    dataset = args.get("dataset")
    ours = {
        "rate": _domainbed_rate(dataset, hparams, is_authors),
        "backbone": _domainbed_backbone(dataset, hparams, is_authors),
        "image_size": 28 if dataset in SMALL_IMAGE_DATASETS else 224,
        "head_lr_multiplier": hparams.get("lastlrfac", 1.0),
        "augment_evaluation": _augments_evaluation(dataset, hparams, args),
    }
    our_args = {**args, "dataset": from_domainbed_name(dataset) or dataset}
    by_step = {record["step"]: record for record in records}  # a resume may repeat a step
    return [
        {**record, "step": step + 1, "hparams": {**record["hparams"], **ours},
         "args": our_args}
        for step, record in by_step.items()
    ]


def _domainbed_rate(dataset, hparams, is_authors):
    if dataset in SMALL_IMAGE_DATASETS and not is_authors:
        return 0.0
    key = "vit_dropout" if hparams.get("vit") else "resnet_dropout"
    if key not in hparams:
        raise UnreadableRunError(f"DomainBed records without hparams.{key}")
    return float(hparams[key])


def _augments_evaluation(dataset, hparams, args):
    """DomainBed evaluates its training domains with their training
    augmentation (none on the MNIST sets); the fork's `outsplit_noaug`
    evaluates their out splits clean."""
    return (
        dataset not in SMALL_IMAGE_DATASETS
        and bool(hparams.get("data_augmentation", True))
        and not args.get(AUTHORS_ARG, False)
    )


def _domainbed_backbone(dataset, hparams, is_authors):
    """A label for the network DomainBed (or the authors' fork) fine-tunes."""
    writer = "verylarge_dropout" if is_authors else "DomainBed"
    if dataset in SMALL_IMAGE_DATASETS:
        return f"{writer} MNIST CNN"
    if hparams.get("vit"):
        return f"{writer} dinov2_vitb14"
    if hparams.get("resnet50_augmix"):
        return f"{writer} timm resnet50.ram_in1k"
    network = "resnet18" if hparams.get("resnet18") else "resnet50"
    if is_authors:
        return f"{writer} torchvision {network} {hparams.get('pretrain_version', 'v1')}"
    return f"{writer} torchvision {network}"


def _has_backbone_regularizer(hparams):
    return (
        hparams.get("stodepth", 1) < 1
        or max(hparams.get("dropout_rate_per_group") or [0]) > 0
    )


def _unsound_weight_average(folder, hparams):
    """Why the fork's weight average of this run is not ours, or `None`."""
    if not hparams.get("freeze_bn", True):
        return (
            "BatchNorm statistics not frozen (the fork's average keeps the "
            "pretrained ones)"
        )
    out = os.path.join(folder, "out.txt")
    if os.path.exists(out):
        with open(out, errors="replace") as file:
            if AUTHORS_RESUME_LINE in file.read():
                return "the run was resumed (the fork restarts its average on resume)"
    return None


def _add_accuracies(by_step, logged_records, prefix, start):
    """Copies `logged_records`' accuracies, from step `start` on, under `prefix`."""
    for logged in logged_records:
        step = logged.get("step")
        if step is None or step < start or step + 1 not in by_step:
            continue
        by_step[step + 1].update(
            {f"{prefix}{key}": value for key, value in logged.items()
             if key.startswith("env") and key.endswith("_acc")}
        )
