"""Running one fine-tuning command with its output appended to a log file.

Example:

>>> import os, sys, tempfile
>>> log = os.path.join(tempfile.mkdtemp(), "run", "log.txt")
>>> run_command([sys.executable, "-c", "print('hello')"], log)
0
>>> open(log).read().splitlines()[1]
'hello'
"""

import os
import subprocess


def run_command(command, log_path, environment=None, started=None):
    """Runs `command`, appending its output to `log_path`; returns the exit code.

    Args:
        command: the argument list to run.
        log_path: the log file (created with its folder); the command line
            is written first.
        environment: the command's environment; default this process's.
        started: called with the `Popen` once the command runs (e.g. to pass
            signals on to it).
    """
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    with open(log_path, "a") as log_file:
        log_file.write(" ".join(command) + "\n")
        log_file.flush()
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=environment
        )
        if started is not None:
            started(process)
        return process.wait()
