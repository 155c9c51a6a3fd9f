"""Run the paper's grid of fine-tuning runs: launch, status, delete_incomplete.

    python apps/sweep.py launch --dataset=vlcs --data_dir=DATA --output_dir=runs/vlcs
    python apps/sweep.py status --dataset=vlcs --data_dir=DATA --output_dir=runs/vlcs
    python apps/sweep.py launch --dataset=PATH   # your own PATH/<domain>/<class>/<image>

The grid is the product of --rates, --lrs, --weight_decays,
--head_lr_multipliers, --test_envs and --trials; its defaults are the paper's
(rates {0, 0.9}, lr {1e-3, 5e-4}, weight decay {1e-4, 5e-5, 1e-5}, 3 trials,
every domain as test domain). The other flags (`apps/run_flags.py`: data,
backbone, steps, image size, precision, `--distribution`, ...) are
`apps/finetune.py`'s, passed to every run. Each run's folder is named by a
hash of its settings: `launch` again skips the finished runs and resumes the
unfinished ones; `status` counts them (the same flags name the same grid).
Launchers: `local` (one run after the other, each in its own process),
`in_process`, `multi_gpu` (one run per visible GPU) and `slurm` (a submitit
job array). A preemption signal (SIGTERM, SIGUSR1) stops the sweep with exit
code 75 once the run in progress has saved its checkpoint; `launch` again
resumes it. SLURM jobs warned of their time limit or of a preemption are
requeued and resume.
"""

import os
import shlex
import sys

from host_memory import reuse_freed_memory
from quiet_start import start_tensorflow
from tensorflow_kernels import use_onednn_kernels

reuse_freed_memory()
use_onednn_kernels()
start_tensorflow()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_ldrop.data.registry import dataset_short_name  # noqa: E402
from keras_ldrop.experiments import launchers  # noqa: E402
from keras_ldrop.experiments.sweep import (  # noqa: E402
    TRIALS,
    WEIGHT_DECAYS,
    delete_incomplete,
    make_jobs,
    sweep_status,
)
from keras_ldrop.training import PREEMPTED_EXIT_CODE, Preempted  # noqa: E402
from run_flags import shared_settings  # noqa: E402

FINETUNE_APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "finetune.py")
COMMANDS = ("launch", "status", "delete_incomplete")
LAUNCHERS = ("local", "in_process", "multi_gpu", "slurm")

flags.DEFINE_list("rates", None, "Dropout rates. Default: 0 and the dataset's rate (0.9; DomainNet 0.5).")
flags.DEFINE_list("lrs", None, "Learning rates. Default: the dataset's (1e-3,5e-4; DomainNet 3e-3,5e-3; the offline minis 1e-4).")
flags.DEFINE_list("weight_decays", [repr(w) for w in WEIGHT_DECAYS], "Coupled L2 coefficients.")
flags.DEFINE_list("head_lr_multipliers", None, "Learning-rate factors of the head. Default: the dataset's (1; the offline minis 30).")
flags.DEFINE_list("test_envs", None, "Held-out domain indices, one per run. Default: every domain.")
flags.DEFINE_integer("trials", TRIALS, "Trials: trial_seed = seed = 0 .. trials-1.")
flags.DEFINE_enum("launcher", "local", LAUNCHERS, "How to run the jobs.")
flags.DEFINE_list("gpus", None, "multi_gpu: GPU ids. Default: CUDA_VISIBLE_DEVICES or nvidia-smi's list.")
flags.DEFINE_string("slurm_partition", None, "slurm: partition.")
flags.DEFINE_integer("slurm_timeout_min", 24 * 60, "slurm: time limit of each run, minutes.")
flags.DEFINE_integer("slurm_gpus_per_node", 1, "slurm: GPUs per run.")
flags.DEFINE_integer("slurm_cpus_per_task", 8, "slurm: CPUs per run.")
flags.DEFINE_integer("slurm_mem_gb", 32, "slurm: memory per run, GB.")
flags.DEFINE_integer("slurm_array_parallelism", 64, "slurm: runs at a time.")
flags.DEFINE_boolean("dry_run", False, "launch: print the commands instead of running them.")
FLAGS = flags.FLAGS


def _numbers(name, convert):
    values = getattr(FLAGS, name)
    if values is None:
        return None
    try:
        return [convert(value) for value in values]
    except ValueError:
        raise ValueError(
            f"--{name} takes comma-separated numbers; received {','.join(values)!r}."
        ) from None


def jobs_from_flags():
    """The grid's `Job`s, as the flags describe them."""
    settings = shared_settings()
    if settings["data_dir"]:
        settings["data_dir"] = os.path.abspath(settings["data_dir"])
    return make_jobs(
        output_dir(),
        FLAGS.dataset,
        rates=_numbers("rates", float),
        lrs=_numbers("lrs", float),
        weight_decays=_numbers("weight_decays", float),
        head_lr_multipliers=_numbers("head_lr_multipliers", float),
        trials=FLAGS.trials,
        test_envs=_numbers("test_envs", int),
        **settings,
    )


def output_dir():
    return FLAGS.output_dir or os.path.join(
        "runs", f"sweep-{dataset_short_name(FLAGS.dataset)}"
    )


def make_launcher():
    """The launcher `--launcher` names, configured by the flags."""
    if FLAGS.launcher == "in_process":
        return launchers.InProcessLauncher()
    if FLAGS.launcher == "multi_gpu":
        return launchers.MultiGpuLauncher(FINETUNE_APP, gpus=FLAGS.gpus)
    if FLAGS.launcher == "slurm":
        parameters = dict(
            timeout_min=FLAGS.slurm_timeout_min,
            gpus_per_node=FLAGS.slurm_gpus_per_node,
            cpus_per_task=FLAGS.slurm_cpus_per_task,
            mem_gb=FLAGS.slurm_mem_gb,
            slurm_array_parallelism=FLAGS.slurm_array_parallelism,
        )
        if FLAGS.slurm_partition:
            parameters["slurm_partition"] = FLAGS.slurm_partition
        return launchers.SlurmLauncher(
            FINETUNE_APP, os.path.join(output_dir(), "slurm_logs"), **parameters
        )
    return launchers.SubprocessLauncher(FINETUNE_APP)


def print_status(jobs):
    counts = sweep_status(jobs)
    print(f"{len(jobs)} jobs in {os.path.abspath(output_dir())}: "
          + ", ".join(f"{count} {state}" for state, count in counts.items()))


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        sys.exit(f"sweep: error: give one command, {', '.join(COMMANDS)}; received {argv[1:]}")
    command = argv[1]
    try:
        jobs = jobs_from_flags()
        if command == "status":
            print_status(jobs)
        elif command == "delete_incomplete":
            deleted = delete_incomplete(jobs)
            print(f"Deleted {len(deleted)} incomplete job folder(s).")
            print_status(jobs)
        elif FLAGS.dry_run:
            for job in jobs:
                print(shlex.join(job.command(FINETUNE_APP, sys.executable)))
        else:
            report = launchers.launch(jobs, make_launcher())
            print_status(jobs)
            if report.failed:
                sys.exit(
                    f"sweep: error: {len(report.failed)} job(s) failed; "
                    "see the sweep_log.txt in their folders"
                )
    except Preempted as stop:
        print(f"sweep: {stop}", file=sys.stderr)
        sys.exit(PREEMPTED_EXIT_CODE)
    except (ValueError, launchers.NoGpuError) as error:
        sys.exit(f"sweep: error: {' '.join(str(error).split())}")


if __name__ == "__main__":
    app.run(main)
