"""Stopping a run cleanly when a scheduler asks: SIGTERM, SIGUSR1 or SIGUSR2.

SLURM and cloud schedulers send SIGTERM (SLURM: or the signal named by
`--signal`, e.g. SIGUSR1; submitit's jobs get SIGUSR2) some time before they
kill a job. While a
`PreemptionWatch` is active such a signal only sets a flag; the
`StopAtNextStep` callback ends `model.fit` after the step in progress, the
run saves its checkpoint there and stops with `Preempted`, and the apps exit
with `PREEMPTED_EXIT_CODE` so that a launcher knows to requeue the job.

Example:

>>> import os, signal
>>> with PreemptionWatch() as watch:
...     os.kill(os.getpid(), signal.SIGUSR1)
...     watch.signal_name
'SIGUSR1'
"""

import signal
import threading

import keras

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)

# sysexits.h EX_TEMPFAIL: a temporary failure, the same command may be retried.
PREEMPTED_EXIT_CODE = 75


class Preempted(Exception):
    """The run stopped on a preemption signal after saving its checkpoint."""


class PreemptionWatch:
    """Turns the preemption signals into a flag while active (a context manager).

    The previous handlers come back on exit. Outside the main thread, where
    Python cannot install signal handlers, the watch does nothing.

    Attributes:
        signal_name: the first preemption signal received (`"SIGTERM"`,
            `"SIGUSR1"`, `"SIGUSR2"`), or None.
    """

    def __init__(self):
        self.signal_name = None
        self._previous = {}
        self._child = None

    @property
    def requested(self):
        return self.signal_name is not None

    def forward_to(self, process):
        """Passes the signals received from now on to `process` (a `Popen`)."""
        self._child = process

    def _receive(self, signum, frame):
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in PREEMPTION_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._receive)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        return False


class StopAtNextStep(keras.callbacks.Callback):
    """Ends a `fit` after the step, or the epoch's end, during which `watch`
    received a preemption signal.

    Listed after the callbacks that checkpoint at an epoch's end, it also
    stops a signal that arrives during that checkpoint's evaluation before
    another step is taken.
    """

    def __init__(self, watch):
        super().__init__()
        self.watch = watch

    def on_train_batch_end(self, batch, logs=None):
        self._stop_if_requested()

    def on_epoch_end(self, epoch, logs=None):
        self._stop_if_requested()

    def _stop_if_requested(self):
        if self.watch.requested:
            self.model.stop_training = True


class CarryIntervalLoss(keras.callbacks.Callback):
    """Carries Keras' running loss mean across a stop in mid-interval.

    A record's loss is the mean over its checkpoint interval, which `fit`
    keeps as a (total, count) pair. After a stop in mid-interval that pair
    goes into the checkpoint (`state`), and this callback puts it back when
    the next `fit` starts, so the record equals an uninterrupted run's.

    Args:
        state: `[total, count]` from a preempted interval, or None.
    """

    def __init__(self, state=None):
        super().__init__()
        self.state = state

    def on_epoch_begin(self, epoch, logs=None):
        if self.state is not None:
            for variable, value in zip(loss_mean(self.model).variables, self.state):
                variable.assign(value)
            self.state = None


def loss_mean(model):
    """The `keras.metrics.Mean` in which `fit` averages the loss."""
    return next(metric for metric in model.metrics if metric.name == "loss")


def loss_mean_state(model):
    """`[total, count]` of the loss mean, as floats (exact for float32)."""
    return [
        float(keras.ops.convert_to_numpy(variable))
        for variable in loss_mean(model).variables
    ]
