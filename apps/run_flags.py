"""The flags that `apps/finetune.py` and `apps/sweep.py` share, defined once.

They set up one fine-tuning run; the sweep passes them to each of its runs.
The settings a sweep varies (rate, lr, weight decay, ...) are defined by each
app: one value in `finetune.py`, a list in `sweep.py`.

    from run_flags import shared_settings
    config = FinetuneConfig(dataset=..., **shared_settings()).resolve()
"""

from absl import flags

from keras_ldrop.training import FinetuneConfig
from keras_ldrop.training.config import DATA_SOURCES, DISTRIBUTIONS, PRECISIONS

_DEFAULTS = FinetuneConfig()

DATASET = flags.DEFINE_string("dataset", _DEFAULTS.dataset, "Registry name (vlcs, pacs, office_home, terra_incognita, domain_net, rotated_mnist, colored_mnist, pacs_mini, vlcs_mini), or your own data: a folder PATH/<domain>/<class>/<image> or a CSV manifest with columns path,label,domain (paths relative to the CSV).")
DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder holding the downloaded registered datasets (apps/download.py); not used with --dataset=PATH.")
BACKBONE = flags.DEFINE_string("backbone", None, "Preset name, hf:// or kaggle:// handle, local preset folder, keras_cv:NAME, or efficientnet_lite0_imagenet_offline. Default: hf://timm/resnet50.tv2_in1k (offline datasets: the offline EfficientNet-Lite0).")
IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Side of the square input images. Default: the dataset's.")
STEPS = flags.DEFINE_integer("steps", None, "Number of updates. Default: the dataset's (10000; DomainNet 30000).")
BATCH_SIZE = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Images from EACH training domain per update.")
MOMENTUM = flags.DEFINE_float("momentum", _DEFAULTS.momentum, "SGD momentum.")
CHECKPOINT_FREQ = flags.DEFINE_integer("checkpoint_freq", None, "Updates between evaluations/checkpoints. Default: the dataset's.")
HOLDOUT_FRACTION = flags.DEFINE_float("holdout_fraction", _DEFAULTS.holdout_fraction, "Share of each domain held out as its out split.")
PRECISION = flags.DEFINE_enum("precision", _DEFAULTS.precision, PRECISIONS, "Compute precision.")
FREEZE_BN = flags.DEFINE_boolean("freeze_bn", _DEFAULTS.freeze_batchnorm, "Keep BatchNorm statistics frozen (the paper's setting).")
AUGMENT_EVALUATION = flags.DEFINE_boolean("augment_evaluation", _DEFAULTS.augment_evaluation, "Evaluate the training domains' in/out splits with the training augmentation (one draw per image, fixed for the run), as DomainBed and the paper do; --noaugment_evaluation evaluates them clean. The test domains are always clean.")
AVERAGE_START = flags.DEFINE_integer("average_start", None, "First update of the weight average and trajectory ensemble. Default: 300 or the first checkpoint.")
DISTRIBUTION = flags.DEFINE_enum("distribution", _DEFAULTS.distribution, DISTRIBUTIONS, "data_parallel: split each batch across every device (JAX: keras.distribution.DataParallel, across processes too; TensorFlow: MirroredStrategy over the local GPUs; not available on torch). Not part of the run's settings: a run may resume with another.")
DATA_SOURCE = flags.DEFINE_enum("data_source", _DEFAULTS.data_source, DATA_SOURCES, "folder: read the image files. tfds: read the shards `python apps/prepare.py --dataset=... --tfds_dir=DIR` wrote (same examples, splits and batches; in a multi-process run each process reads only its rows). Not part of the run's settings.")
TFDS_DIR = flags.DEFINE_string("tfds_dir", None, "The TFDS data dir holding the prepared shards (--data_source=tfds).")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "finetune: the run's folder, default runs/<dataset>-<hash of the settings> (the same command resumes it). sweep: the grid's folder, one subfolder per run, default runs/sweep-<dataset>.")


def shared_settings():
    """The `FinetuneConfig` fields these flags set, as keyword arguments.

    `dataset` and `output_dir` are left out: each app uses them its own way.
    """
    return dict(
        data_dir=DATA_DIR.value,
        backbone=BACKBONE.value,
        image_size=IMAGE_SIZE.value,
        steps=STEPS.value,
        batch_size=BATCH_SIZE.value,
        momentum=MOMENTUM.value,
        checkpoint_freq=CHECKPOINT_FREQ.value,
        holdout_fraction=HOLDOUT_FRACTION.value,
        precision=PRECISION.value,
        freeze_batchnorm=FREEZE_BN.value,
        average_start=AVERAGE_START.value,
        augment_evaluation=AUGMENT_EVALUATION.value,
        distribution=DISTRIBUTION.value,
        data_source=DATA_SOURCE.value,
        tfds_dir=TFDS_DIR.value,
    )
