"""Writes the golden sweep (tests/golden/runs) and its expected tables.

    python tests/golden/make_golden.py

The runs are synthetic but DomainBed-shaped: vlcs_mini (3 domains), rates
{0, 0.9}, lr {1e-3, 5e-4}, one weight decay, every domain as test domain, 2
trials, checkpoints at steps 50, 100 and 150 (weight average and trajectory
ensemble from step 100), accuracies drawn from a seeded generator and rounded
to 4 decimals; the soups' cache files stand for the final models. One run
without `done` must be left out. Rerun this script only to change the golden
set on purpose, and review the diff of `expected/`.
"""

import itertools
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from keras_ldrop.experiments import collect, soups, tables  # noqa: E402
from tests.test_collect_results import GOLDEN_TABLES  # noqa: E402

RUNS = os.path.join(HERE, "runs")
EXPECTED = os.path.join(HERE, "expected")
DOMAIN_BASE = (0.93, 0.62, 0.68)  # caltech, labelme, sun o.o.d. at rate 0
STEPS = (50, 100, 150)


def accuracies(rng, test_env, lift, prefix):
    record = {}
    for env, base in enumerate(DOMAIN_BASE):
        for part in ("in", "out"):
            held_out = env == test_env
            level = base + lift if held_out else 0.86 + lift / 2
            value = np.clip(level + rng.normal(0, 0.02), 0, 1)
            record[f"{prefix}env{env}_{part}_acc"] = round(float(value), 4)
    return record


def run_records(rate, lr, test_env, trial, folder):
    rng = np.random.default_rng([int(rate * 10), int(lr * 1e4), test_env, trial])
    records = []
    for index, step in enumerate(STEPS):
        lift = 0.02 * (rate > 0) + 0.005 * index
        record = {"step": step, "epoch": step * 32 / 44, "loss": round(1.0 / (index + 1), 4)}
        record.update(accuracies(rng, test_env, lift, ""))
        if step >= 100:
            record.update(accuracies(rng, test_env, lift + 0.01, "average_"))
            record.update(accuracies(rng, test_env, lift + 0.005, "ensemble_"))
            record["ensemble_members"] = index
        record["hparams"] = {
            "backbone": "efficientnet_lite0_imagenet_offline", "rate": rate, "lr": lr,
            "weight_decay": 1e-4, "momentum": 0.9, "head_lr_multiplier": 1.0,
            "batch_size": 32, "image_size": 224, "freeze_bn": True,
            "lr_drop_steps": [75], "average_start": 100, "precision": "float32",
            "augment_evaluation": True,
        }
        record["args"] = {
            "dataset": "vlcs_mini", "algorithm": "ERM" if rate == 0 else "LargeDropout",
            "test_envs": [test_env], "trial_seed": trial, "seed": trial,
            "hparams_seed": 0, "holdout_fraction": 0.2, "steps": 150,
            "checkpoint_freq": 50, "data_dir": None, "output_dir": folder,
            "backend": "tensorflow",
        }
        record["images_per_second"] = 100.0
        records.append(record)
    return records


def write_run(folder, records, done=True):
    os.makedirs(folder)
    with open(os.path.join(folder, "results.jsonl"), "w") as file:
        file.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
    if done:
        open(os.path.join(folder, "done"), "w").close()


def write_soups(runs):
    cells = {}
    for run in runs:
        cells.setdefault((run.rate, run.test_envs, run.trial_seed), []).append(run)
    os.makedirs(os.path.join(RUNS, collect.SOUP_CACHE))
    for (rate, (test_env,), trial), cell in sorted(cells.items()):
        rng = np.random.default_rng([int(rate * 10), test_env, trial, 7])
        lift = 0.02 * (rate > 0)
        cached = {
            "members": sorted(os.path.basename(run.folder) for run in cell),
            soups.UNIFORM_SOUP: accuracies(rng, test_env, lift + 0.012, ""),
            soups.FINAL_ENSEMBLE: accuracies(rng, test_env, lift + 0.008, ""),
        }
        path = os.path.join(RUNS, collect.SOUP_CACHE, f"{soups.cache_key(cell)}.json")
        with open(path, "w") as file:
            json.dump(cached, file, indent=1, sort_keys=True)


def main():
    shutil.rmtree(RUNS, ignore_errors=True)
    grid = itertools.product((0.0, 0.9), (1e-3, 5e-4), range(3), range(2))
    for rate, lr, test_env, trial in grid:
        name = f"vlcs_mini-rate{rate:g}-lr{lr:g}-env{test_env}-trial{trial}"
        folder = os.path.join(RUNS, name)
        write_run(folder, run_records(rate, lr, test_env, trial, name))
    unfinished = os.path.join(RUNS, "vlcs_mini-unfinished")
    write_run(unfinished, run_records(0.5, 1e-3, 0, 0, "unfinished")[:1], done=False)
    runs, _ = collect.read_runs(RUNS)
    write_soups(runs)
    shutil.rmtree(EXPECTED, ignore_errors=True)
    os.makedirs(EXPECTED)
    cache = os.path.join(RUNS, collect.SOUP_CACHE)
    for selection, style, extension in GOLDEN_TABLES:
        summaries = collect.summarize(collect.collect_scores(runs, selection, cache))
        with open(os.path.join(EXPECTED, f"{selection}.{extension}"), "w") as file:
            file.write(tables.render(summaries, selection, style))


if __name__ == "__main__":
    main()
