"""How much evaluating the training domains with augmentation moves checkpoint selection.

DomainBed and the paper evaluate the training domains' splits with the training
augmentation (`--augment_evaluation`, our default); `--noaugment_evaluation`
evaluates them clean. Both leave training unchanged, so each run here trains
once, evaluated with augmentation, and at every checkpoint its splits are
also evaluated clean (`clean_records.json` in the run folder). Each run's
checkpoint is then chosen by training-domain validation under each
evaluation. One JSON line per run, then a table: the chosen steps, their
test-domain accuracy, and the mean training-domain validation under each.

  python benchmarks/evaluation_selection.py --dataset=vlcs_mini --rates=0,0.9 \\
      --output_dir=runs/evaluation-selection
"""

import dataclasses
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_ldrop.data import load_domains  # noqa: E402
from keras_ldrop.experiments.job_cleanup import released_after_job  # noqa: E402
from keras_ldrop.training import FinetuneConfig, evaluation, train_and_evaluate  # noqa: E402

_DATASET = flags.DEFINE_string("dataset", "vlcs_mini", "Registry name or a folder of domains.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of the registered datasets.")
_BACKBONE = flags.DEFINE_string("backbone", None, "Any backbone finetune takes; default the dataset's.")
_RATES = flags.DEFINE_list("rates", ["0", "0.9"], "Dropout rates.")
_TEST_ENVS = flags.DEFINE_list("test_envs", None, "Held-out domains, one run each; default every domain.")
_STEPS = flags.DEFINE_integer("steps", None, "Updates; default the dataset's.", lower_bound=1)
_CHECKPOINT_FREQ = flags.DEFINE_integer("checkpoint_freq", None, "Updates between checkpoints; default the dataset's.", lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Image side; default the dataset's.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per training domain per step.", lower_bound=1)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder of the runs (required; a finished run is read again, not retrained).")

CLEAN_RECORDS = "clean_records.json"


class CleanEvaluation(keras.callbacks.Callback):
    """At the end of each epoch (one checkpoint interval), every split's clean accuracy."""

    def __init__(self, splits, image_size):
        super().__init__()
        self.splits = splits
        self.split_logits = evaluation.SplitPredictor(splits, image_size)
        self.records = []

    def on_epoch_end(self, epoch, logs=None):
        logits = self.split_logits(self.model)
        self.records.append(evaluation.accuracies(logits, self.splits))


def run_both_ways(config, folder):
    """Trains the run once; returns its records and its clean records, step by step."""
    clean_path = os.path.join(folder, CLEAN_RECORDS)
    if not os.path.exists(clean_path):
        domains = load_domains(config.spec(), config.data_dir)
        splits = evaluation.domain_splits(domains, config.holdout_fraction, config.trial_seed)
        clean = CleanEvaluation(splits, config.image_size)
        with released_after_job():
            train_and_evaluate(config, folder, log=lambda _: None, callbacks=[clean])
        with open(clean_path, "w") as file:
            json.dump(clean.records, file)
    with open(os.path.join(folder, "results.jsonl")) as file:
        records = [json.loads(line) for line in file]
    with open(clean_path) as file:
        clean_records = json.load(file)
    if len(clean_records) != len(records):
        raise app.UsageError(
            f"{folder} holds a run trained without this script (or resumed): "
            f"{len(records)} records, {len(clean_records)} clean ones; use a new --output_dir."
        )
    return records, clean_records


def chosen(records, validations, test_envs):
    """`(step, test accuracy)` of the record with the best validation (first on ties)."""
    best = int(np.argmax(validations))
    return records[best]["step"], evaluation.test_accuracy(records[best], test_envs)


def compare(records, clean_records, test_envs):
    """The run's selection under augmented and under clean evaluation."""
    augmented = [evaluation.training_domain_validation(r, test_envs) for r in records]
    clean = [evaluation.training_domain_validation(r, test_envs) for r in clean_records]
    augmented_step, augmented_ood = chosen(records, augmented, test_envs)
    clean_step, clean_ood = chosen(records, clean, test_envs)
    return {
        "augmented_step": augmented_step, "augmented_ood": round(augmented_ood, 4),
        "clean_step": clean_step, "clean_ood": round(clean_ood, 4),
        "augmented_iid": round(float(np.mean(augmented)), 4),
        "clean_iid": round(float(np.mean(clean)), 4),
    }


def main(argv):
    del argv
    if not _OUTPUT_DIR.value:
        raise app.UsageError("--output_dir is required.")
    base = FinetuneConfig(
        dataset=_DATASET.value, data_dir=_DATA_DIR.value, backbone=_BACKBONE.value,
        steps=_STEPS.value, checkpoint_freq=_CHECKPOINT_FREQ.value,
        image_size=_IMAGE_SIZE.value, batch_size=_BATCH_SIZE.value,
    )
    domains = len(base.spec().domains)
    test_envs = [int(env) for env in _TEST_ENVS.value or range(domains)]
    rows = []
    for rate in (float(rate) for rate in _RATES.value):
        for test_env in test_envs:
            config = dataclasses.replace(base, rate=rate, test_envs=(test_env,)).resolve()
            folder = os.path.join(_OUTPUT_DIR.value, f"rate{rate:g}-env{test_env}")
            records, clean_records = run_both_ways(config, folder)
            row = {"rate": rate, "test_env": test_env,
                   **compare(records, clean_records, config.test_envs)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"{'rate':>4} {'test':>4} {'aug step':>8} {'aug ood':>7} {'clean step':>10} "
          f"{'clean ood':>9} {'aug iid':>7} {'clean iid':>9}")
    for row in rows:
        print(f"{row['rate']:>4g} {row['test_env']:>4} {row['augmented_step']:>8} "
              f"{row['augmented_ood']:>7.4f} {row['clean_step']:>10} {row['clean_ood']:>9.4f} "
              f"{row['augmented_iid']:>7.4f} {row['clean_iid']:>9.4f}")
    for rate in sorted({row["rate"] for row in rows}):
        of_rate = [row for row in rows if row["rate"] == rate]
        print(f"rate {rate:g}: mean o.o.d. of the chosen checkpoints "
              f"{np.mean([r['augmented_ood'] for r in of_rate]):.4f} (augmented evaluation), "
              f"{np.mean([r['clean_ood'] for r in of_rate]):.4f} (clean); "
              f"{sum(r['augmented_step'] != r['clean_step'] for r in of_rate)} of "
              f"{len(of_rate)} runs chose another checkpoint")


if __name__ == "__main__":
    app.run(main)
