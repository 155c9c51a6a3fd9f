"""DomainBed's records both ways: DomainBed's grouping of ours, its run folders read as ours.

DomainBed's side is written here from its documented record fields, not from
its code: `reporting.load_records` reads `<input_dir>/<run>/results.jsonl`,
one JSON record per line (each line ending in a newline, which it strips);
`reporting.get_grouped_records` groups records by `(args.trial_seed,
args.dataset, args.algorithm, test_env)` for each of `args.test_envs`;
`model_selection` groups a group's records into runs by `args.hparams_seed`
and reads `step`, `env{i}_in_acc` and `env{i}_out_acc`; the tables list the
datasets of `datasets.DATASETS`, one column per class `ENVIRONMENTS` entry.
"""

import json
import os
import subprocess
import sys
import types

import pytest

from keras_ldrop.data import DATASETS
from keras_ldrop.experiments import collect, domainbed_records
from keras_ldrop.experiments.sweep import make_jobs
from keras_ldrop.training import loop
from keras_ldrop.training.records import RunFiles

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# DomainBed's dataset classes that we also have, with their number of environments.
DOMAINBED_ENVIRONMENTS = {
    "VLCS": 4, "PACS": 4, "OfficeHome": 4, "TerraIncognita": 4, "DomainNet": 6,
    "RotatedMNIST": 6, "ColoredMNIST": 3,
}


def written_args_and_hparams(config, folder):
    """`(args, hparams)` as a run of `config` in `folder` writes them in every record."""
    run = object.__new__(loop._Run)
    run.config, run.spec = config, config.spec()
    run.files = RunFiles(folder)
    run.distribution = types.SimpleNamespace(devices=[])
    return run._args(), run._hparams()


def accuracies(num_envs, level, prefix=""):
    return {
        f"{prefix}env{i}_{part}_acc": round(level + 0.01 * i + (0.005 if part == "out" else 0), 4)
        for i in range(num_envs) for part in ("in", "out")
    }


def write_run(folder, records, done=True, logs=None):
    """A run folder: `results.jsonl` (+ `done`), and `logs` as `{file name: records}`."""
    os.makedirs(folder)
    for name, lines in {domainbed_records.RESULTS: records, **(logs or {})}.items():
        with open(os.path.join(folder, name), "w") as file:
            file.writelines(json.dumps(r, sort_keys=True) + "\n" for r in lines)
    if done:
        with open(os.path.join(folder, "done"), "w") as file:
            file.write("done")


def domainbed_load_records(input_dir):
    """DomainBed's `load_records`: the records of `<input_dir>/<run>/results.jsonl`."""
    records = []
    for name in os.listdir(input_dir):
        path = os.path.join(input_dir, name, "results.jsonl")
        if os.path.exists(path):
            with open(path) as file:
                records.extend(json.loads(line[:-1]) for line in file)
    return records


def domainbed_groups(records):
    """DomainBed's grouping: `{(trial_seed, dataset, algorithm, test_env): {hparams_seed: [record]}}`."""
    groups = {}
    for record in records:
        args = record["args"]
        for test_env in args["test_envs"]:
            key = (args["trial_seed"], args["dataset"], args["algorithm"], test_env)
            groups.setdefault(key, {}).setdefault(args["hparams_seed"], []).append(record)
    return groups


def domainbed_validation(record, test_env):
    """DomainBed's training-domain validation: the mean `env{i}_out_acc` of the
    training domains, `i` counted up from 0 while the key exists."""
    training_domains = []
    i = 0
    while f"env{i}_out_acc" in record:
        if i != test_env:
            training_domains.append(record[f"env{i}_out_acc"])
        i += 1
    return sum(training_domains) / len(training_domains)


def test_domainbed_groups_our_sweep_by_rate_and_learning_rate(tmp_path):
    sweep = tmp_path / "sweep"
    jobs = make_jobs(sweep, "vlcs", rates=[0, 0.9], lrs=[1e-3, 5e-4], weight_decays=[1e-4],
                     trials=1, test_envs=[1], steps=6, checkpoint_freq=3)
    for job in jobs:  # written as a run writes them, without the training
        args, hparams = written_args_and_hparams(job.config, job.folder)
        files = RunFiles(job.folder)
        files.claim(job.config)
        level = 0.5 + hparams["lr"] * 100 + hparams["rate"] / 10
        files.write_records([
            {"step": step, **accuracies(4, level + step / 100), "hparams": hparams, "args": args}
            for step in (3, 6)
        ])
        files.finish({})

    groups = domainbed_groups(domainbed_load_records(sweep))
    assert sorted(groups) == [(0, "VLCS", "ERM", 1), (0, "VLCS", "LargeDropout(0.9)", 1)]
    for runs in groups.values():
        assert len(runs) == 2  # one hparams_seed per learning rate
        for records in runs.values():
            assert len({r["args"]["output_dir"] for r in records}) == 1
            assert [r["step"] for r in records] == [3, 6]
        assert sorted(records[0]["hparams"]["lr"] for records in runs.values()) == [5e-4, 1e-3]
    # What DomainBed's tables and selection read is there.
    record = next(iter(groups[(0, "VLCS", "ERM", 1)].values()))[0]
    num_envs = DOMAINBED_ENVIRONMENTS[record["args"]["dataset"]]
    assert all(f"env{i}_{part}_acc" in record for i in range(num_envs) for part in ("in", "out"))
    assert f"env{num_envs}_out_acc" not in record
    # The same learning rate has the same hparams_seed at both rates.
    seeds = [sorted(runs) for runs in groups.values()]
    assert seeds[0] == seeds[1]

    runs, _ = collect.read_runs(sweep)
    assert {run.setting.dataset for run in runs} == {"vlcs"}
    assert sorted(run.rate for run in runs) == [0.0, 0.0, 0.9, 0.9]
    # DomainBed's training-domain selection in each group is ours in each cell.
    ours = {score.rate: score.ood for score in collect.collect_scores(runs, "training_domain")
            if score.method == "fine-tuning"}
    for (_, _, _, test_env), runs_of_group in groups.items():
        best = max((max(records, key=lambda r: domainbed_validation(r, test_env))
                    for records in runs_of_group.values()),
                   key=lambda r: domainbed_validation(r, test_env))
        assert ours[best["hparams"]["rate"]] == best[f"env{test_env}_in_acc"]


def test_our_datasets_named_after_domainbed_classes_have_their_environments():
    named = {spec.domainbed_name: len(spec.domains)
             for spec in DATASETS.values() if spec.domainbed_name}
    assert named == DOMAINBED_ENVIRONMENTS


def test_datasets_carry_domainbed_class_names_or_ours(tmp_path, user_tree):
    for dataset, expected in (("vlcs", "VLCS"), ("office_home", "OfficeHome"),
                              ("colored_mnist", "ColoredMNIST"), ("vlcs_mini", "vlcs_mini"),
                              (str(user_tree), str(user_tree))):
        (job,) = make_jobs(tmp_path / dataset.replace("/", "_"), dataset, rates=[0.9],
                           lrs=[1e-3], weight_decays=[1e-4], trials=1, test_envs=[0])
        args, _ = written_args_and_hparams(job.config, job.folder)
        assert (args["dataset"], args["keras_ldrop_dataset"]) == (expected, dataset)


def our_record(dataset, **args):
    return {"step": 3, **accuracies(4, 0.6), "hparams": {"rate": 0.9, "backbone": "tiny"},
            "args": {"dataset": dataset, "test_envs": [0], "trial_seed": 0, **args}}


def test_old_and_new_records_of_one_dataset_are_read_alike(user_tree):
    old = our_record("vlcs")
    new = our_record("VLCS", keras_ldrop_dataset="vlcs", algorithm="LargeDropout(0.9)")
    user_old = our_record(str(user_tree))
    user_new = our_record(str(user_tree), keras_ldrop_dataset=str(user_tree))
    read = [collect.Run(name, domainbed_records.as_our_records([r]))
            for name, r in (("old", old), ("new", new), ("uo", user_old), ("un", user_new))]
    assert [run.setting.dataset for run in read] == ["vlcs", "vlcs", str(user_tree), str(user_tree)]
    assert new["args"]["dataset"] == "VLCS"  # the records given are left as they were


def domainbed_record(step, level, test_envs=(1,), algorithm="ERM", dropout=0.0, seed=0,
                     hparams_seed=0, trial_seed=0, lr=1e-3, **hparams):
    """A record as DomainBed's `train.py` writes it (4 VLCS environments)."""
    return {
        "step": step, "epoch": step / 10, "loss": 0.5, "step_time": 0.1, "mem_gb": 1.0,
        **accuracies(4, level),
        "hparams": {"batch_size": 32, "class_balanced": False, "data_augmentation": True,
                    "lr": lr, "nonlinear_classifier": False, "resnet18": False,
                    "resnet_dropout": dropout, "weight_decay": 1e-4, **hparams},
        "args": {"algorithm": algorithm, "checkpoint_freq": 300, "data_dir": "/data",
                 "dataset": "VLCS", "holdout_fraction": 0.2, "hparams": None,
                 "hparams_seed": hparams_seed, "output_dir": "out", "seed": seed,
                 "skip_model_save": False, "save_model_every_checkpoint": False,
                 "steps": 600, "task": "domain_generalization", "test_envs": list(test_envs),
                 "trial_seed": trial_seed, "uda_holdout_fraction": 0},
    }


def write_domainbed_runs(root):
    """DomainBed run folders: three ERM runs, and ones we cannot compare."""
    write_run(root / "erm_lr1", [domainbed_record(s, 0.5 + s / 2000) for s in (0, 300, 599)])
    write_run(root / "erm_lr2", [domainbed_record(s, 0.6 - s / 3000, hparams_seed=1, lr=5e-5)
                                 for s in (0, 300, 599)])
    write_run(root / "erm_dropout", [domainbed_record(s, 0.55, dropout=0.5, hparams_seed=2)
                                     for s in (0, 599)])
    write_run(root / "coral", [domainbed_record(599, 0.6, algorithm="CORAL")])
    write_run(root / "two_test_envs", [domainbed_record(599, 0.6, test_envs=(1, 2))])
    write_run(root / "running", [domainbed_record(0, 0.5)], done=False)
    write_run(root / "broken", [domainbed_record(0, 0.5)])
    with open(root / "broken" / "results.jsonl", "a") as file:
        file.write('{"step": 300, "env0_in\n')
    write_run(root / "other", [{"step": 0, "hparams": {}, "args": {"model": "x"}}])


def test_domainbed_run_folders_are_read_and_the_others_named(tmp_path):
    write_domainbed_runs(tmp_path)
    with pytest.warns(UserWarning) as caught:
        runs, unfinished = collect.read_runs(tmp_path)
    messages = [str(w.message) for w in caught]
    assert [os.path.basename(f) for f in unfinished] == ["running"]
    assert sorted(os.path.basename(run.folder) for run in runs) == [
        "erm_dropout", "erm_lr1", "erm_lr2"
    ]
    for expected in ("DomainBed algorithm CORAL is none of our methods",
                     "DomainBed runs with other than one test domain",
                     "results.jsonl line 2 is not a JSON object",
                     "neither keras_ldrop's (hparams.rate) nor DomainBed's (args.algorithm)"):
        (line,) = [m for m in messages if expected in m]
        assert line.startswith("Left out 1 run folder(s): ") and "\n" not in line
    assert len(messages) == 4

    erm = next(run for run in runs if run.folder.endswith("erm_lr1"))
    assert erm.setting == collect.Setting(
        "vlcs", "DomainBed torchvision resnet50", 224, 600, augment_evaluation=True
    )
    assert [r["step"] for r in erm.records] == [1, 301, 600]
    assert (erm.rate, erm.test_envs, erm.trial_seed) == (0.0, (1,), 0)

    # Training-domain selection among the two rate-0 runs, written out plainly.
    best = max((r for run in runs if run.rate == 0 for r in run.records),
               key=lambda r: (r["env0_out_acc"] + r["env2_out_acc"] + r["env3_out_acc"]) / 3)
    (summary,) = collect.summarize(collect.collect_scores(runs, "training_domain"))
    assert summary.column_label((1,)) == "LabelMe"
    rows = {(row.method, row.rate): row for row in summary.rows}
    assert set(rows) == {("fine-tuning", 0.0), ("fine-tuning", 0.5)}
    assert rows[("fine-tuning", 0.0)].ood[(1,)].mean == pytest.approx(best["env1_in_acc"])


def authors_records(seed, lr, level, name="results"):
    """What the authors' `trainv2.py` writes to `<name>.jsonl` (VLCS, test domain 0)."""
    hparams = {"batch_size": 32, "freeze_bn": True, "lastlrfac": 1.0, "lr": lr,
               "ma_start_iter": 300, "milestones": [5000, 10000], "momentum": 0.9,
               "pretrain_version": "v2", "resnet18": False, "resnet_dropout": 0.9,
               "stodepth": 1.0, "steps": 601, "weight_decay": 1e-4}
    args = {"algorithm": "ERM", "checkpoint_freq": None, "data_dir": "/data", "dataset": "VLCS",
            "hparams": json.dumps({"resnet_dropout": 0.9, "lr": lr}), "hparams_seed": 0,
            "holdout_fraction": 0.2, "init_step": False, "outsplit_noaug": 0,
            "output_dir": "out", "path_for_init": None, "save_logits": 0,
            "save_model_every_checkpoint": False, "seed": seed, "skip_model_save": False,
            "steps": 601, "test_envs": [0], "trial_seed": 0, "uda_holdout_fraction": 0}
    records = []
    for step in (0, 300, 600):
        shift = {"results": 0.0, "ensemble300": 0.02, "swa300": 0.04}[name] if step >= 300 else 0
        record = {"step": step, "epoch": step / 40, "loss": 0.3, "step_time": 0.2, "mem_gb": 9.0,
                  **accuracies(4, level + step / 6000 + shift), "hparams": hparams, "args": args}
        for env in (1, 2, 3):
            record[f"env{env}_in_acc"] = -1  # the fork skips the training domains' in splits
        records.append(record)
    return records


def write_authors_run(folder, seed, lr, level, resumed=False):
    logs = {f"{name}_results.jsonl": authors_records(seed, lr, level, name)
            for name in ("ensemble300", "swa300")}
    write_run(folder, authors_records(seed, lr, level), logs=logs)
    if resumed:
        (folder / "out.txt").write_text(f"load model dict\n{domainbed_records.AUTHORS_RESUME_LINE}\n")


def test_the_authors_runs_bring_their_ensembles_and_weight_averages(tmp_path):
    for seed in (0, 1):
        for lr, level in ((1e-3, 0.6), (5e-4, 0.55)):
            write_authors_run(tmp_path / f"s{seed}_lr{lr}", seed, lr, level + seed / 100,
                              resumed=(seed, lr) == (1, 5e-4))
    with pytest.warns(UserWarning) as caught:
        runs, _ = collect.read_runs(tmp_path)
    (message,) = [str(w.message) for w in caught]
    assert message.startswith("Weight averaging left out of 1 run(s) of the authors' code: "
                              "the run was resumed")
    assert message.endswith("s1_lr0.0005")

    run = next(run for run in runs if run.folder.endswith("s0_lr0.001"))
    assert run.setting == collect.Setting("vlcs", "verylarge_dropout torchvision resnet50 v2",
                                          224, 601, augment_evaluation=True)
    assert (run.rate, run.trial_seed) == (0.9, (0, 0))
    first, middle, last = run.records
    assert [first["step"], middle["step"], last["step"]] == [1, 301, 601]
    assert not any(key.startswith(("average_", "ensemble_")) for key in first)
    expected = authors_records(0, 1e-3, 0.6, "swa300")[2]
    assert last["average_env0_in_acc"] == expected["env0_in_acc"]
    assert last["ensemble_env0_in_acc"] == authors_records(0, 1e-3, 0.6, "ensemble300")[2][
        "env0_in_acc"]
    resumed = next(run for run in runs if run.folder.endswith("s1_lr0.0005"))
    assert "ensemble_env0_in_acc" in resumed.records[-1]
    assert "average_env0_in_acc" not in resumed.records[-1]

    (summary,) = collect.summarize(collect.collect_scores(runs, "training_domain"))
    rows = {row.method: row for row in summary.rows}
    assert set(rows) == {"fine-tuning", "weight averaging", "trajectory ensemble"}
    # Two trials (seeds), each selecting between its two learning rates.
    assert rows["fine-tuning"].ood[(0,)].count == 2
    assert rows["weight averaging"].ood[(0,)].count == 2


def test_collect_results_app_reads_domainbed_and_authors_folders_beside_ours(tmp_path):
    write_domainbed_runs(tmp_path / "domainbed")
    write_authors_run(tmp_path / "authors" / "run", seed=0, lr=1e-3, level=0.6)
    completed = subprocess.run(
        [sys.executable, os.path.join(ROOT, "apps", "collect_results.py"),
         f"--input_dir={tmp_path}", f"--output_dir={tmp_path / 'results'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "4 finished runs read; 1 unfinished left out." in completed.stdout
    assert "DomainBed torchvision resnet50" in completed.stdout
    assert "verylarge_dropout torchvision resnet50 v2" in completed.stdout
    assert "Left out 1 run folder(s): DomainBed algorithm CORAL" in completed.stderr
