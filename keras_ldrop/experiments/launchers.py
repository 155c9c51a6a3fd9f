"""Launchers that run a sweep's jobs: here, on every local GPU, or on SLURM.

Every launcher takes the jobs still to run (`launch` below drops the finished
ones) and returns a `LaunchReport`. The subprocess launchers run each job as
`python apps/finetune.py <its flags> --output_dir=<its folder>`, so a crashed
job does not stop the sweep; its output goes to `sweep_log.txt` in its folder.

- `SubprocessLauncher`: one job after the other on this machine (the default).
- `InProcessLauncher`: one job after the other in this Python process (no
  start-up cost per job; a job that raises is reported and the next one runs).
- `MultiGpuLauncher`: one worker per GPU, each taking the next job from a
  queue and running it with `CUDA_VISIBLE_DEVICES` set to its GPU.
- `SlurmLauncher`: submits the jobs as one SLURM job array through
  `submitit` and returns once they are queued. A job warned of its time limit
  or of a preemption checkpoints its run and is requeued
  (`keras_ldrop.experiments.requeue`).

Example:

>>> from keras_ldrop.experiments.sweep import make_jobs
>>> from keras_ldrop.experiments.launchers import SubprocessLauncher, launch
>>> jobs = make_jobs("/tmp/sweep", dataset="vlcs_mini", trials=1, test_envs=[0],
...                  steps=10, checkpoint_freq=5, image_size=64)
>>> report = launch(jobs, SubprocessLauncher("apps/finetune.py"))  # doctest: +SKIP
"""

import dataclasses
import os
import queue
import shutil
import subprocess
import sys
import threading
import traceback

from keras_ldrop.experiments.commands import run_command
from keras_ldrop.experiments.requeue import RequeueingCommand
from keras_ldrop.experiments.sweep import DONE
from keras_ldrop.training.preemption import (
    PREEMPTED_EXIT_CODE,
    Preempted,
    PreemptionWatch,
)

LOG_NAME = "sweep_log.txt"


class NoGpuError(RuntimeError):
    """The multi-GPU launcher found no GPU to run on."""


@dataclasses.dataclass
class LaunchReport:
    """What a launch did.

    Attributes:
        skipped: jobs already finished, not run again.
        finished: jobs that ran to their end.
        failed: `(job, reason)` pairs for jobs that crashed.
        submitted: for `SlurmLauncher`, the submitit jobs, one per job.
    """

    skipped: list = dataclasses.field(default_factory=list)
    finished: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)
    submitted: list = dataclasses.field(default_factory=list)


def launch(jobs, launcher, log=print):
    """Runs (or submits) every job that is not done; skips the others.

    Args:
        jobs: `Job`s from `make_jobs`.
        launcher: one of this module's launchers.
        log: where progress lines go.

    Returns:
        The launcher's `LaunchReport`, with the finished jobs in `skipped`.
    """
    done, pending = [], []
    for job in jobs:
        (done if job.state == DONE else pending).append(job)
    log(f"{len(done)} of {len(jobs)} jobs already done; "
        f"launching {len(pending)} with {type(launcher).__name__}.")
    report = launcher.launch(pending) if pending else LaunchReport()
    report.skipped = done
    for job, reason in report.failed:
        log(f"FAILED {job.folder}: {reason}")
    return report


def _log_path(job):
    return os.path.join(job.folder, LOG_NAME)


def _failure(code, job):
    return f"exit code {code}; see {_log_path(job)}"


class SubprocessLauncher:
    """Runs the jobs one after the other, each in its own Python process.

    A preemption signal (SIGTERM, SIGUSR1, SIGUSR2) to this process is passed
    on to the job in progress, which checkpoints and exits with code 75; the
    launch then stops with `Preempted`.

    Args:
        app: path of `apps/finetune.py`.
        python: the interpreter that runs it.
        log: where progress lines go.
    """

    def __init__(self, app, python=sys.executable, log=print):
        self.app = app
        self.python = python
        self.log = log

    def launch(self, jobs):
        report = LaunchReport()
        with PreemptionWatch() as watch:
            for index, job in enumerate(jobs, 1):
                if watch.requested:
                    raise Preempted(
                        f"Stopped on {watch.signal_name} before {job.folder}; "
                        "launch the sweep again to resume."
                    )
                self.log(f"[{index}/{len(jobs)}] {job.folder}")
                code = run_command(
                    job.command(self.app, self.python),
                    _log_path(job),
                    started=watch.forward_to,
                )
                if code == PREEMPTED_EXIT_CODE:
                    raise Preempted(
                        f"{job.folder} stopped on a preemption signal and saved "
                        "its checkpoint; launch the sweep again to resume."
                    )
                if code:
                    report.failed.append((job, _failure(code, job)))
                else:
                    report.finished.append(job)
        return report


class InProcessLauncher:
    """Runs the jobs one after the other in this process.

    Args:
        log: where progress lines (the jobs' too) go.

    A job that raises is recorded as failed, its traceback appended to its
    `sweep_log.txt`, and the next job runs; a job stopped by a preemption
    signal (`Preempted`, its checkpoint saved) stops the launch. After each
    job, what it left in the process is released
    (`job_cleanup.released_after_job`), so memory stays flat over a sweep.
    """

    def __init__(self, log=print):
        self.log = log

    def launch(self, jobs):
        from keras_ldrop.experiments.job_cleanup import released_after_job
        from keras_ldrop.training import train_and_evaluate

        report = LaunchReport()
        for index, job in enumerate(jobs, 1):
            self.log(f"[{index}/{len(jobs)}] {job.folder}")
            try:
                with released_after_job():
                    train_and_evaluate(job.config, job.folder, log=self.log)
            except Preempted:
                raise  # the signal was meant for the whole sweep
            except Exception as error:  # a crashed job must not stop the sweep
                report.failed.append((job, f"{type(error).__name__}: {error}"))
                os.makedirs(job.folder, exist_ok=True)
                with open(_log_path(job), "a") as log_file:
                    log_file.write(traceback.format_exc())
            else:
                report.finished.append(job)
        return report


def visible_gpus():
    """The GPU ids to use: `CUDA_VISIBLE_DEVICES` if set, else `nvidia-smi`'s list.

    Raises:
        NoGpuError: neither names a GPU.
    """
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        gpus = [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    elif shutil.which("nvidia-smi"):
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True, text=True,
        ).stdout
        gpus = [line.strip() for line in output.splitlines() if line.strip()]
    else:
        gpus = []
    if not gpus:
        raise NoGpuError(
            "No GPU found (CUDA_VISIBLE_DEVICES is empty or unset and nvidia-smi "
            "lists none); name them with --gpus or use --launcher=local."
        )
    return gpus


class MultiGpuLauncher:
    """Runs one job per GPU at a time, each GPU taking the next job when free.

    Args:
        app: path of `apps/finetune.py`.
        gpus: GPU ids; default `visible_gpus()`.
        python: the interpreter that runs the app.
        log: where progress lines go.
    """

    def __init__(self, app, gpus=None, python=sys.executable, log=print):
        self.app = app
        self.gpus = list(gpus) if gpus else visible_gpus()
        self.python = python
        self.log = log

    def launch(self, jobs):
        report = LaunchReport()
        waiting = queue.Queue()
        for job in jobs:
            waiting.put(job)
        lock = threading.Lock()

        def work(gpu):
            environment = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu)
            while True:
                try:
                    job = waiting.get_nowait()
                except queue.Empty:
                    return
                self.log(f"[GPU {gpu}] {job.folder}")
                code = run_command(
                    job.command(self.app, self.python), _log_path(job), environment
                )
                with lock:
                    if code:
                        report.failed.append((job, _failure(code, job)))
                    else:
                        report.finished.append(job)

        workers = [threading.Thread(target=work, args=(gpu,)) for gpu in self.gpus]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return report


class SlurmLauncher:
    """Submits the jobs as a SLURM job array through `submitit`.

    Args:
        app: path of `apps/finetune.py`, as seen from the cluster's nodes.
        log_folder: where submitit writes its scripts and logs.
        cluster: submitit's cluster: `None` (SLURM when `sbatch` exists, else
            local processes), `"slurm"`, `"local"` or `"debug"` (in this
            process, when a job's result is asked for).
        python: the interpreter that runs the app on the nodes.
        log: where progress lines go.
        **parameters: submitit executor parameters, e.g. `timeout_min=720`,
            `gpus_per_node=1`, `cpus_per_task=8`, `mem_gb=32`,
            `slurm_partition="gpu"`, `slurm_array_parallelism=16`.
    """

    def __init__(self, app, log_folder, cluster=None, python=sys.executable,
                 log=print, **parameters):
        import submitit

        self.app = app
        self.python = python
        self.log = log
        self.executor = submitit.AutoExecutor(folder=log_folder, cluster=cluster)
        self.executor.update_parameters(**parameters)

    def launch(self, jobs):
        with self.executor.batch():
            pending = [
                self.executor.submit(
                    RequeueingCommand(job.command(self.app, self.python), _log_path(job))
                )
                for job in jobs
            ]
        report = LaunchReport(submitted=pending)
        for job, submitted in zip(jobs, pending):
            self.log(f"submitted {submitted.job_id}: {job.folder}")
        return report
