"""One fine-tuning run that also prints the health of its pooled features at each checkpoint.

For each checkpoint, one JSON line: the run's record (step, loss, training-domain
validation and test-domain accuracy) and, over a fixed probe set (the first
`--probe_images` images of the training domains' out splits, evaluation
transform), the pooled features' mean and standard deviation and the fraction of
dead units (zero on every probe image). The features are the input of the
large-dropout layer, the representation the paper drops.

  python benchmarks/feature_health.py --dataset=vlcs_mini --rate=0.9 --lr=0.001 \\
      --head_lr_multiplier=1 --steps=200 --output_dir=/tmp/health
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_ldrop.data import evaluation_dataset, load_domains, split_in_out  # noqa: E402
from keras_ldrop.training import FinetuneConfig, train_and_evaluate  # noqa: E402
from keras_ldrop.training.evaluation import (  # noqa: E402
    test_accuracy,
    training_domain_validation,
)

_DATASET = flags.DEFINE_string("dataset", "vlcs_mini", "Registry name or a folder of domains.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of the registered datasets.")
_BACKBONE = flags.DEFINE_string("backbone", None, "Any backbone finetune takes; default the dataset's.")
_RATE = flags.DEFINE_float("rate", 0.9, "Dropout rate.")
_LR = flags.DEFINE_float("lr", None, "Learning rate; default the dataset's.")
_HEAD = flags.DEFINE_float("head_lr_multiplier", None, "Head learning-rate factor; default the dataset's.")
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 1e-4, "Coupled L2 coefficient.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per training domain per step.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 200, "Updates.", lower_bound=1)
_CHECKPOINT_FREQ = flags.DEFINE_integer("checkpoint_freq", 50, "Updates between checkpoints.", lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Image side; default the dataset's.")
_TEST_ENV = flags.DEFINE_integer("test_env", 0, "Held-out domain.")
_PROBE = flags.DEFINE_integer("probe_images", 64, "Probe images for the feature statistics.", lower_bound=1)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Run folder (required; the run resumes there).")


class FeatureHealth(keras.callbacks.Callback):
    """At the end of each epoch (one checkpoint interval), measures the pooled features on `probe`."""

    def __init__(self, probe):
        super().__init__()
        self.probe = probe
        self.measurements = []

    def on_epoch_end(self, epoch, logs=None):
        features = keras.Model(
            self.model.inputs, self.model.get_layer("large_dropout").input
        ).predict(self.probe, verbose=0)
        self.measurements.append(feature_statistics(features))


def feature_statistics(features):
    """Mean, standard deviation and dead-unit fraction of `(images, units)` features.

    >>> feature_statistics(np.array([[0.0, 1.0], [0.0, 3.0]]))
    {'feature_mean': 1.0, 'feature_std': 1.224745, 'dead_fraction': 0.5}
    """
    features = np.asarray(features, np.float64)
    return {
        "feature_mean": round(float(features.mean()), 6),
        "feature_std": round(float(features.std()), 6),
        "dead_fraction": round(float(np.mean(np.all(features <= 0, axis=0))), 6),
    }


def probe_images(config, count):
    """The first `count` images of the training domains' out splits, as one array."""
    domains = load_domains(config.spec(), config.data_dir)
    images = []
    for index, domain in enumerate(domains):
        if index in config.test_envs:
            continue
        out_split = split_in_out(domain, config.holdout_fraction, config.trial_seed, index)[1]
        for batch, _ in evaluation_dataset(out_split, config.image_size):
            images.append(batch.numpy())
    return np.concatenate(images)[:count]


def main(argv):
    del argv
    if not _OUTPUT_DIR.value:
        raise app.UsageError("--output_dir is required.")
    config = FinetuneConfig(
        dataset=_DATASET.value, data_dir=_DATA_DIR.value, backbone=_BACKBONE.value,
        rate=_RATE.value, lr=_LR.value,
        head_lr_multiplier=_HEAD.value, weight_decay=_WEIGHT_DECAY.value,
        batch_size=_BATCH_SIZE.value, steps=_STEPS.value,
        checkpoint_freq=_CHECKPOINT_FREQ.value, image_size=_IMAGE_SIZE.value,
        test_envs=(_TEST_ENV.value,),
    ).resolve()
    health = FeatureHealth(probe_images(config, _PROBE.value))
    train_and_evaluate(config, _OUTPUT_DIR.value, callbacks=[health])
    with open(os.path.join(_OUTPUT_DIR.value, "results.jsonl")) as file:
        records = [json.loads(line) for line in file]
    for record, measured in zip(records[-len(health.measurements):], health.measurements):
        print(json.dumps({
            "step": record["step"],
            "loss": round(record["loss"], 4),
            "iid": round(training_domain_validation(record, config.test_envs), 4),
            "ood": round(test_accuracy(record, config.test_envs), 4),
            **measured,
        }), flush=True)


if __name__ == "__main__":
    app.run(main)
