"""Faults a long run meets: a preemption signal, an output folder that stops taking writes."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_ldrop.experiments import launchers
from keras_ldrop.experiments.sweep import make_jobs
from keras_ldrop.training import (
    PREEMPTED_EXIT_CODE,
    OutputFolderError,
    Preempted,
    train_and_evaluate,
)
from tests.app_runner import load_app
from tests.test_finetune_app import APP, ROOT, app_command, run_main
from tests.test_training import read_records, stream_starts, tiny_config, without_timing


class SignalAtStep(keras.callbacks.Callback):
    """Sends this process `signum` at the end of the run's `step`-th update."""

    def __init__(self, signum, step):
        super().__init__()
        self.signum = signum
        self.step = step
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, tiny_vlcs_tree, tiny_preset_folder):
    """An uninterrupted 9-step run (checkpoints at 3, 6, 9)."""
    folder = tmp_path_factory.mktemp("straight")
    train_and_evaluate(
        tiny_config(tiny_vlcs_tree, tiny_preset_folder, steps=9), folder,
        log=lambda _: None,
    )
    return folder


def checkpointed_step(folder):
    """The step of `folder`'s checkpoint, after reading every array in it."""
    with np.load(os.path.join(folder, "checkpoint.npz")) as stored:
        arrays = {name: stored[name] for name in stored.files}
    return json.loads(arrays["meta"].tobytes())["step"]


def assert_resumes_to_the_straight_run(config, folder, step, straight_run):
    """Reruns `config` in `folder`: it resumes at `step` and ends with the straight run's records."""
    lines = []
    train_and_evaluate(config, folder, log=lines.append)
    assert lines[0].startswith(f"Resumed from step {step}")
    assert without_timing(read_records(folder)) == without_timing(
        read_records(straight_run)
    )


def signal_at_the_first_checkpoint(signum):
    """A `log` that sends this process `signum` when the step-3 line is written."""

    def log(line):
        if line.startswith("step 3/"):
            os.kill(os.getpid(), signum)

    return log


def jobs_of(config, folder, rates):
    """The sweep jobs of `config`'s settings at each of `rates`."""
    return make_jobs(
        folder, config.dataset, rates=rates, lrs=[config.lr],
        weight_decays=[config.weight_decay], trials=1, test_envs=[0],
        **{name: getattr(config, name) for name in (
            "data_dir", "backbone", "image_size", "batch_size", "steps",
            "checkpoint_freq", "average_start")},
    )


def test_a_signal_mid_interval_checkpoints_that_step_and_resumes_to_a_straight_run(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder, straight_run, monkeypatch
):
    starts = stream_starts(monkeypatch)
    config = tiny_config(tiny_vlcs_tree, tiny_preset_folder, steps=9)
    with pytest.raises(Preempted, match=r"Stopped on SIGUSR1 \(checkpoint at step 4/9"):
        train_and_evaluate(
            config, tmp_path, log=lambda _: None,
            callbacks=[SignalAtStep(signal.SIGUSR1, 4)],
        )
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert checkpointed_step(tmp_path) == 4
    assert [r["step"] for r in read_records(tmp_path)] == [3]
    assert_resumes_to_the_straight_run(config, tmp_path, 4, straight_run)
    assert starts == [0, 4, 6]  # the resumed interval's rest, then the whole ones


def test_a_signal_during_evaluation_stops_at_that_checkpoint(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder
):
    config = tiny_config(tiny_vlcs_tree, tiny_preset_folder, steps=9)
    with pytest.raises(Preempted, match=r"SIGTERM \(checkpoint at step 3/9"):
        train_and_evaluate(
            config, tmp_path, log=signal_at_the_first_checkpoint(signal.SIGTERM)
        )
    assert checkpointed_step(tmp_path) == 3
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_sigterm_to_the_app_exits_75_with_one_line_and_the_same_command_resumes(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder, straight_run
):
    folder = tmp_path / "run"
    command = app_command(folder, tiny_vlcs_tree, tiny_preset_folder, steps=9)
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if (folder / "results.jsonl").exists():
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before the signal"
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=300)[1]
    assert process.returncode == PREEMPTED_EXIT_CODE, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("finetune: Stopped on SIGTERM (checkpoint at step ")
    assert "Traceback" not in stderr
    assert not (folder / "done").exists()
    stopped_at = checkpointed_step(folder)
    assert f"step {stopped_at}/9" in last
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Resumed from step {stopped_at}" in resumed.stdout
    assert without_timing(read_records(folder)) == without_timing(
        read_records(straight_run)
    )


def block_writes(folder, name):
    """Makes every write of `folder/name` fail: its temporary path becomes a folder."""
    (folder / f"{name}.tmp").mkdir()


def test_a_folder_that_stops_taking_writes_ends_with_one_line_and_an_intact_checkpoint(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder, straight_run
):
    config = tiny_config(tiny_vlcs_tree, tiny_preset_folder, steps=9)

    def block_after_the_first_checkpoint(line):
        if line.startswith("step 3/"):
            block_writes(tmp_path, "checkpoint.npz")

    with pytest.raises(OutputFolderError) as error:
        train_and_evaluate(config, tmp_path, log=block_after_the_first_checkpoint)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"Cannot write to the run folder {tmp_path}: ")
    assert "checkpoint.npz.tmp" in message
    assert "Its checkpoint at step 3 is intact" in message
    assert checkpointed_step(tmp_path) == 3
    os.rmdir(tmp_path / "checkpoint.npz.tmp")
    assert_resumes_to_the_straight_run(config, tmp_path, 3, straight_run)


def test_the_app_names_an_unwritable_folder_in_one_line(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder
):
    app = load_app("finetune")
    folder = tmp_path / "run"
    folder.mkdir()
    block_writes(folder, "config.json")
    argv = app_command(folder, tiny_vlcs_tree, tiny_preset_folder, steps=3)[2:]
    message = run_main(app, *argv)
    assert message.startswith(f"finetune: error: Cannot write to the run folder {folder}: ")
    assert "No checkpoint was written yet" in message
    assert "\n" not in message


def process_running(*arguments):
    """The pid and parent pid of the process whose command line holds `arguments`."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                command = file.read().decode().split("\0")
            with open(f"/proc/{entry}/status") as file:
                status = dict(line.split(":\t", 1) for line in file if ":\t" in line)
        except OSError:
            continue
        if all(argument in command for argument in arguments):
            return int(entry), int(status["PPid"])
    return None


def test_a_slurm_job_warned_of_preemption_checkpoints_is_requeued_and_resumes(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder, straight_run
):
    config = tiny_config(tiny_vlcs_tree, tiny_preset_folder, steps=9).resolve()
    [job] = jobs_of(config, tmp_path / "sweep", [config.rate])
    assert job.config == config
    launcher = launchers.SlurmLauncher(
        APP, tmp_path / "slurm_logs", cluster="local", timeout_min=10,
        log=lambda _: None,
    )
    [submitted] = launchers.launch([job], launcher, log=lambda _: None).submitted
    output_flag = f"--output_dir={job.folder}"
    results = os.path.join(job.folder, "results.jsonl")
    deadline = time.time() + 300
    while time.time() < deadline and not os.path.exists(results):
        time.sleep(0.01)
    app_process = process_running(APP, output_flag)
    assert app_process, "the run ended before the preemption notice"
    os.kill(app_process[1], signal.SIGUSR2)  # submitit's notice, to the SLURM task
    submitted.result()
    log = open(os.path.join(job.folder, launchers.LOG_NAME)).read()
    assert "finetune: Stopped on SIGUSR1 (checkpoint at step " in log
    assert "Resumed from step " in log
    assert os.path.exists(os.path.join(job.folder, "done"))
    assert without_timing(read_records(job.folder)) == without_timing(
        read_records(straight_run)
    )


def test_sigterm_to_a_local_sweep_stops_its_run_at_a_checkpoint_and_launch_resumes(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder
):
    output = tmp_path / "sweep"
    command = [
        sys.executable, os.path.join(ROOT, "apps", "sweep.py"), "launch",
        "--launcher=local", "--dataset=vlcs", f"--data_dir={tiny_vlcs_tree}",
        f"--backbone={tiny_preset_folder}", "--rates=0.9", "--lrs=0.01",
        "--weight_decays=0.0001", "--trials=1", "--test_envs=0", "--steps=9",
        "--checkpoint_freq=3", "--image_size=32", "--batch_size=4",
        f"--output_dir={output}",
    ]
    sweep = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and sweep.poll() is None:
        if list(output.glob("*/results.jsonl")):
            break
        time.sleep(0.01)
    assert sweep.poll() is None, "the sweep ended before the signal"
    sweep.send_signal(signal.SIGTERM)  # to the sweep alone: it passes it on
    stderr = sweep.communicate(timeout=300)[1]
    assert sweep.returncode == PREEMPTED_EXIT_CODE, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].endswith(
        "stopped on a preemption signal and saved its checkpoint; launch the sweep "
        "again to resume."
    )
    [run] = [path for path in output.iterdir() if (path / "config.json").exists()]
    assert not (run / "done").exists()
    log = (run / launchers.LOG_NAME).read_text()
    assert "finetune: Stopped on SIGTERM (checkpoint at step " in log
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (run / "done").exists()
    assert "Resumed from step " in (run / launchers.LOG_NAME).read_text()
    assert [r["step"] for r in read_records(run)] == [3, 6, 9]


def test_a_signal_stops_an_in_process_sweep_instead_of_starting_the_next_run(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder
):
    config = tiny_config(tiny_vlcs_tree, tiny_preset_folder, steps=9).resolve()
    jobs = jobs_of(config, tmp_path, [0.0, 0.9])
    launcher = launchers.InProcessLauncher(log=signal_at_the_first_checkpoint(signal.SIGTERM))
    with pytest.raises(Preempted, match=r"SIGTERM \(checkpoint at step 3/9"):
        launchers.launch(jobs, launcher, log=lambda _: None)
    assert checkpointed_step(jobs[0].folder) == 3
    assert not os.path.exists(jobs[1].folder)
