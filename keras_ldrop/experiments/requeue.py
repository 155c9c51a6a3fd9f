"""A SLURM job that runs one fine-tuning command and requeues itself when preempted.

submitit submits jobs with `--signal=USR2@90`: SLURM sends that signal 90 s
before a time limit or a preemption, and submitit's handler in the job calls
the job's `checkpoint` method, then requeues the job with what it returns.
`RequeueingCommand.checkpoint` passes the notice on to the running
`apps/finetune.py` (SIGUSR1), which saves its checkpoint after the step in
progress and exits with `PREEMPTED_EXIT_CODE`; the requeued job reruns the
same command, and the run resumes. A command that exits with that code on its
own (SLURM sent it SIGTERM) is requeued the same way.

Example (the job a `SlurmLauncher` submits for each run):

>>> job = RequeueingCommand(["python", "apps/finetune.py", "--output_dir=r"], "r/log")
>>> job.checkpoint().function.command
['python', 'apps/finetune.py', '--output_dir=r']
"""

import os
import signal
import subprocess

from keras_ldrop.experiments.commands import run_command
from keras_ldrop.training.preemption import PREEMPTED_EXIT_CODE


class RequeueingCommand:
    """Runs `command`, its output appended to `log_path`; a callable for submitit.

    Args:
        command: the argument list to run.
        log_path: the log file (created with its folder).
        stop_timeout_s: how long `checkpoint` waits for the command to save
            its state and exit (keep it under submitit's `signal_delay_s`).
    """

    def __init__(self, command, log_path, stop_timeout_s=75):
        self.command = list(command)
        self.log_path = os.fspath(log_path)
        self.stop_timeout_s = stop_timeout_s
        self._process = None

    def __getstate__(self):
        return {**self.__dict__, "_process": None}

    def __call__(self):
        code = run_command(self.command, self.log_path, started=self._remember)
        if code == PREEMPTED_EXIT_CODE:
            _ask_submitit_to_requeue()
            raise RuntimeError(
                f"{self.command[1]} stopped on a preemption signal and saved its "
                f"checkpoint; launch the sweep again to resume it ({self.log_path})."
            )
        if code:
            raise RuntimeError(
                f"{self.command[1]} exited with code {code}; see {self.log_path}"
            )

    def _remember(self, process):
        self._process = process

    def checkpoint(self, *args, **kwargs):
        """submitit's preemption hook: stops the command at its next step,
        then hands submitit the same command to requeue."""
        from submitit.helpers import DelayedSubmission

        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGUSR1)
            try:
                process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                pass  # SLURM kills it; the run resumes from its last checkpoint
        return DelayedSubmission(
            RequeueingCommand(self.command, self.log_path, self.stop_timeout_s)
        )


def _ask_submitit_to_requeue():
    """Raises submitit's preemption signal in this job, whose handler
    checkpoints and requeues it; outside a submitit job, does nothing."""
    from submitit import JobEnvironment

    signum = getattr(signal, f"SIG{JobEnvironment.USR_SIG}")
    if callable(signal.getsignal(signum)):
        os.kill(os.getpid(), signum)
