"""The sweep: its grid, hashed folders, states, launchers and the app end to end."""

import hashlib
import importlib.util
import json
import os
import re
import shlex
import struct

import pytest

from keras_ldrop.experiments import launchers
from keras_ldrop.experiments.sweep import (
    DONE,
    INCOMPLETE,
    NOT_LAUNCHED,
    delete_incomplete,
    finetune_flags,
    make_jobs,
    sweep_status,
)
from keras_ldrop.training import FinetuneConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stands for apps/finetune.py in the launcher tests: records its GPU, fails
# for --lr=0.5, otherwise marks its folder done.
FAKE_APP = """
import os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
os.makedirs(args["output_dir"], exist_ok=True)
with open(os.path.join(args["output_dir"], "gpu.txt"), "w") as file:
    file.write(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
if args["lr"] == "0.5":
    sys.exit(3)
open(os.path.join(args["output_dir"], "done"), "w").close()
"""


def load_app(name):
    spec = importlib.util.spec_from_file_location(
        f"{name}_app", os.path.join(ROOT, "apps", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def apps():
    """The sweep and collect apps (their flags live in one absl registry)."""
    sweep, collect = load_app("sweep"), load_app("collect_results")
    yield sweep, collect
    sweep.FLAGS.unparse_flags()


@pytest.fixture
def fake_app(tmp_path):
    path = tmp_path / "fake_finetune.py"
    path.write_text(FAKE_APP)
    return str(path)


def run_app(module, argv):
    """Runs an app's `main` as `python apps/<app>.py <argv>`; returns its exit message."""
    module.FLAGS.unparse_flags()
    remaining = module.FLAGS(["app", *argv])
    try:
        module.main(remaining)
    except SystemExit as exit_info:
        return str(exit_info.code)
    return None


def test_default_grid_is_the_papers(tmp_path):
    jobs = make_jobs(tmp_path, "vlcs")
    assert len(jobs) == 2 * 2 * 3 * 4 * 3
    configs = [job.config for job in jobs]
    assert {c.rate for c in configs} == {0.0, 0.9}
    assert {c.lr for c in configs} == {1e-3, 5e-4}
    assert {c.weight_decay for c in configs} == {1e-4, 5e-5, 1e-5}
    assert {c.test_envs for c in configs} == {(0,), (1,), (2,), (3,)}
    assert {(c.trial_seed, c.seed) for c in configs} == {(0, 0), (1, 1), (2, 2)}
    assert all(c.steps == 10000 and c.head_lr_multiplier == 1.0 for c in configs)
    assert len({job.folder for job in jobs}) == len(jobs)
    domain_net = make_jobs(tmp_path, "domain_net", trials=1, test_envs=[0])
    assert {j.config.rate for j in domain_net} == {0.0, 0.5}
    assert {j.config.lr for j in domain_net} == {3e-3, 5e-3}


def test_folders_are_named_by_a_hash_of_the_arguments(tmp_path):
    jobs = make_jobs(tmp_path, "pacs_mini", rates=[0, 0.9], trials=2, test_envs=[1])
    again = make_jobs(tmp_path, "pacs_mini", rates=[0.0, 0.9], trials=2, test_envs=[1])
    assert [j.folder for j in jobs] == [j.folder for j in again]
    for job in jobs:
        arguments = job.command("app", "python")[2:-1]
        assert arguments[-1].startswith("--") and "--output_dir" not in " ".join(arguments)
        digest = hashlib.sha256(" ".join(arguments).encode()).hexdigest()[:10]
        assert job.folder == os.path.join(tmp_path, f"pacs_mini-{digest}")
    parallel = make_jobs(
        tmp_path, "pacs_mini", rates=[0, 0.9], trials=2, test_envs=[1],
        distribution="data_parallel",
    )
    assert [j.folder for j in parallel] == [j.folder for j in jobs]
    assert all("--distribution=data_parallel" in j.command("app", "python") for j in parallel)


def finetune_flag_names():
    """The flags apps/finetune.py takes (its own and apps/run_flags.py's), read
    from their sources."""
    names = set()
    for name in ("finetune.py", "run_flags.py"):
        with open(os.path.join(ROOT, "apps", name)) as file:
            names |= set(re.findall(r'flags\.DEFINE_\w+\(\s*"(\w+)"', file.read()))
    return names


def test_a_jobs_command_passes_every_setting_as_a_finetune_flag(tmp_path):
    (job,) = make_jobs(
        tmp_path, "vlcs", rates=[0.9], lrs=[5e-4], weight_decays=[1e-5],
        head_lr_multipliers=[10], trials=1, test_envs=[2], data_dir="/data",
        steps=30, image_size=64, freeze_batchnorm=False, precision="mixed_bfloat16",
    )
    command = job.command("apps/finetune.py", "python")
    assert command[:2] == ["python", "apps/finetune.py"]
    for flag in ("--test_env=2", "--rate=0.9", "--lr=0.0005", "--weight_decay=1e-05",
                 "--head_lr_multiplier=10.0", "--data_dir=/data", "--nofreeze_bn",
                 "--precision=mixed_bfloat16", "--trial_seed=0", "--seed=0",
                 f"--output_dir={job.folder}"):
        assert flag in command
    names = {arg[2:].split("=")[0] for arg in command[2:]}
    assert names - {"nofreeze_bn"} <= finetune_flag_names()
    # Fields at their default are left to the app: it has the same default.
    assert "momentum" not in names and "holdout_fraction" not in names
    (default,) = make_jobs(tmp_path, "vlcs", rates=[0], lrs=[1e-3], weight_decays=[1e-4],
                           head_lr_multipliers=[1], trials=1, test_envs=[0])
    written = {arg[2:].split("=")[0] for arg in default.command("app", "python")[2:]}
    for field in ("rate", "lr", "weight_decay", "head_lr_multiplier", "test_env", "seed"):
        assert field in written


def test_invalid_grids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="--rate"):
        make_jobs(tmp_path, "vlcs", rates=[1.5], trials=1)
    with pytest.raises(ValueError, match="trial axis is empty"):
        make_jobs(tmp_path, "vlcs", trials=0)
    with pytest.raises(ValueError, match="--test_env=9 is out of range"):
        make_jobs(tmp_path, "vlcs", test_envs=[9], trials=1)


def test_status_and_delete_incomplete(tmp_path):
    jobs = make_jobs(tmp_path, "vlcs_mini", trials=1, test_envs=[0], lrs=[1e-3],
                     weight_decays=[1e-4])
    finished, unfinished = jobs
    os.makedirs(finished.folder)
    open(os.path.join(finished.folder, "done"), "w").close()
    os.makedirs(unfinished.folder)
    assert sweep_status(jobs) == {DONE: 1, INCOMPLETE: 1, NOT_LAUNCHED: 0}
    assert delete_incomplete(jobs) == [unfinished]
    assert not os.path.exists(unfinished.folder) and os.path.exists(finished.folder)
    assert sweep_status(jobs) == {DONE: 1, INCOMPLETE: 0, NOT_LAUNCHED: 1}


def fake_jobs(tmp_path, lrs):
    return make_jobs(tmp_path / "sweep", "vlcs_mini", rates=[0], lrs=lrs,
                     weight_decays=[1e-4], trials=1, test_envs=[0])


def test_multi_gpu_launcher_runs_each_job_on_one_gpu(tmp_path, fake_app):
    jobs = fake_jobs(tmp_path, [0.1, 0.2, 0.3, 0.5, 0.6, 0.7])
    launcher = launchers.MultiGpuLauncher(fake_app, gpus=["0", "1"], log=lambda _: None)
    report = launchers.launch(jobs, launcher, log=lambda _: None)
    assert [job.config.lr for job, _ in report.failed] == [0.5]
    assert "exit code 3" in report.failed[0][1]
    assert sorted(j.config.lr for j in report.finished) == [0.1, 0.2, 0.3, 0.6, 0.7]
    gpus = [open(os.path.join(j.folder, "gpu.txt")).read() for j in jobs]
    assert set(gpus) <= {"0", "1"}
    assert sweep_status(jobs) == {DONE: 5, INCOMPLETE: 1, NOT_LAUNCHED: 0}
    again = launchers.launch(jobs, launcher, log=lambda _: None)
    assert len(again.skipped) == 5 and [j.config.lr for j in again.finished] == []


def test_multi_gpu_launcher_without_gpus_says_what_to_do(monkeypatch, fake_app):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(launchers.NoGpuError, match="--launcher=local"):
        launchers.MultiGpuLauncher(fake_app)


def test_slurm_launcher_submits_a_job_array_through_submitit(tmp_path, fake_app):
    jobs = fake_jobs(tmp_path, [0.1, 0.2])
    launcher = launchers.SlurmLauncher(
        fake_app, tmp_path / "slurm_logs", cluster="debug", timeout_min=30,
        gpus_per_node=1, slurm_partition="gpu", log=lambda _: None,
    )
    report = launchers.launch(jobs, launcher, log=lambda _: None)
    assert len(report.submitted) == 2
    for submitted in report.submitted:
        submitted.result()  # the debug executor runs the job here
    assert sweep_status(jobs)[DONE] == 2
    log = open(os.path.join(jobs[0].folder, launchers.LOG_NAME)).read()
    assert fake_app in log.splitlines()[0]


def test_sweep_app_errors_are_one_line(apps, tmp_path):
    sweep, _ = apps
    message = run_app(sweep, ["explode", f"--output_dir={tmp_path}"])
    assert message.startswith("sweep: error: give one command")
    message = run_app(sweep, ["status", "--rates=0,abc", f"--output_dir={tmp_path}"])
    assert message == "sweep: error: --rates takes comma-separated numbers; received '0,abc'."


def test_sweep_app_passes_the_shared_run_flags_to_every_run(apps, tmp_path, capsys):
    sweep, _ = apps
    grid = ["--dataset=vlcs_mini", "--rates=0,0.9", "--trials=1", "--test_envs=1",
            "--weight_decays=0.0001", f"--output_dir={tmp_path}"]
    shared = ["--steps=7", "--image_size=64", "--precision=mixed_bfloat16",
              "--nofreeze_bn", "--distribution=data_parallel"]
    assert run_app(sweep, ["launch", "--dry_run", *grid, *shared]) is None
    commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    assert len(commands) == 2
    for command in commands:
        assert set(shared) <= set(command)
    assert run_app(sweep, ["status", *grid, *shared]) is None
    plain = [job.folder for job in make_jobs(
        tmp_path, "vlcs_mini", rates=[0, 0.9], trials=1, test_envs=[1],
        weight_decays=[1e-4], steps=7, image_size=64, precision="mixed_bfloat16",
        freeze_batchnorm=False,
    )]
    assert "2 not launched" in capsys.readouterr().out
    assert {command[-1] for command in commands} == {f"--output_dir={f}" for f in plain}


def is_png(path):
    with open(path, "rb") as file:
        header = file.read(24)
    width, height = struct.unpack(">II", header[16:24])
    return header[:8] == b"\x89PNG\r\n\x1a\n" and width > 100 and height > 100


def test_tiny_sweep_launched_twice_then_collected(
    apps, tmp_path, capsys, tiny_vlcs_tree, tiny_preset_folder
):
    sweep, collect = apps
    output = tmp_path / "sweep"
    grid = [
        "--dataset=vlcs", f"--data_dir={tiny_vlcs_tree}", f"--backbone={tiny_preset_folder}",
        "--rates=0,0.9", "--lrs=0.01", "--weight_decays=0.0001", "--trials=1",
        "--test_envs=0", "--steps=3", "--checkpoint_freq=3", "--image_size=32",
        "--batch_size=2", f"--output_dir={output}",
    ]
    run_app(sweep, ["status", *grid])
    assert "2 jobs in" in capsys.readouterr().out

    with pytest.warns(UserWarning, match="corrupt.jpg"):
        assert run_app(sweep, ["launch", "--launcher=in_process", *grid]) is None
    assert "2 done, 0 incomplete, 0 not launched" in capsys.readouterr().out
    folders = sorted(p for p in output.iterdir() if p.is_dir())
    rates = {json.loads(p.joinpath("config.json").read_text())["rate"]: p for p in folders}
    assert set(rates) == {0.0, 0.9}

    # An unfinished job (its `done` lost) resumes in a subprocess from its checkpoint.
    resumed = rates[0.9]
    (resumed / "done").unlink()
    run_app(sweep, ["status", *grid])
    assert "1 done, 1 incomplete, 0 not launched" in capsys.readouterr().out
    untouched = (rates[0.0] / "results.jsonl").stat().st_mtime_ns
    assert run_app(sweep, ["launch", "--launcher=local", *grid]) is None
    assert "1 of 2 jobs already done; launching 1" in capsys.readouterr().out
    assert "Resumed from step 3" in (resumed / launchers.LOG_NAME).read_text()
    assert (resumed / "done").exists()

    # Launching again trains nothing.
    assert run_app(sweep, ["launch", "--launcher=in_process", *grid]) is None
    assert "2 of 2 jobs already done; launching 0" in capsys.readouterr().out
    assert (rates[0.0] / "results.jsonl").stat().st_mtime_ns == untouched

    results = tmp_path / "results"
    assert run_app(collect, [f"--input_dir={output}", f"--output_dir={results}"]) is None
    printed = capsys.readouterr().out
    assert "2 finished runs read; 0 unfinished left out." in printed
    for method in ("fine-tuning", "weight averaging", "trajectory ensemble",
                   "uniform soup", "ensemble of final models"):
        for rate in ("0", "0.9"):
            assert any(line.split("  ")[0] == method and f"  {rate} " in line
                       for line in printed.splitlines()), (method, rate)
    markdown = (results / "results_training_domain.md").read_text()
    assert "| fine-tuning | 0 |" in markdown and "| fine-tuning | 0.9 |" in markdown
    assert "Caltech101" in markdown
    assert "\\begin{tabular}" in (results / "results_training_domain.tex").read_text()
    assert is_png(results / "iid_vs_ood_training_domain.png")
    assert is_png(results / "ood_vs_rate_training_domain.png")

    # One run per cell: its soup and final-model ensemble are the final model.
    cached = [json.loads(p.read_text()) for p in (output / "soups").iterdir()]
    assert len(cached) == 2
    for entry in cached:
        (member,) = entry["members"]
        last = [json.loads(line) for line in open(output / member / "results.jsonl")][-1]
        for key, value in entry["uniform soup"].items():
            assert value == last[key] == entry["ensemble of final models"][key]


def test_in_process_launcher_reports_a_crashed_job_and_runs_the_next(tmp_path):
    jobs = make_jobs(tmp_path, "vlcs", rates=[0, 0.9], lrs=[1e-3], weight_decays=[1e-4],
                     trials=1, test_envs=[0], data_dir=str(tmp_path / "missing"))
    report = launchers.launch(jobs, launchers.InProcessLauncher(log=lambda _: None),
                              log=lambda _: None)
    assert [job for job, _ in report.failed] == jobs
    assert all(reason.startswith("DatasetNotFoundError") for _, reason in report.failed)
    log = open(os.path.join(jobs[1].folder, launchers.LOG_NAME)).read()
    assert "Traceback" in log and "apps/download.py --dataset=vlcs" in log
    assert sweep_status(jobs) == {DONE: 0, INCOMPLETE: 2, NOT_LAUNCHED: 0}


def test_a_users_folder_is_swept_like_a_registered_dataset(tmp_path, user_tree):
    jobs = make_jobs(tmp_path / "sweep", str(user_tree), trials=1, weight_decays=[1e-4])
    assert len(jobs) == 3 * 2 * 2  # test domains x rates {0, 0.9} x the paper's lrs
    for job in jobs:
        assert os.path.basename(job.folder).startswith("my_domains-")
        command = job.command("apps/finetune.py", "python")
        assert f"--dataset={user_tree}" in command
        assert not any("dataset_contents" in argument for argument in command)
        assert job.config.dataset_contents["images"] == {
            "site_a": 12, "site_b": 8, "site_c": 12
        }


def test_a_run_on_every_domain_passes_test_env_none(user_tree):
    config = FinetuneConfig(dataset=str(user_tree), test_envs=()).resolve()
    assert "--test_env=none" in finetune_flags(config)
