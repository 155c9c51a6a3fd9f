"""What a run is doing between checkpoints: steps done, images/s, time left.

The training loop prints a record line at each checkpoint, which on a large
dataset is an hour apart. `TrainingProgress`, a Keras callback that the loop
adds to every `fit`, fills the gap: it says when the first step is compiling
(a minute or more on a CPU), then how far the run is. On a terminal it redraws
one line on stderr; in a file or a SLURM log it writes a line every 30 s.

Example (the lines a run logs, with a clock that advances 10 s per reading):

>>> from keras_ldrop.training.progress import TrainingProgress
>>> ticks = iter(range(0, 1000, 10))
>>> progress = TrainingProgress(print, total_steps=20, checkpoint_freq=10,
...                             images_per_step=64, clock=lambda: next(ticks))
>>> progress.at_step(0)
>>> progress.on_epoch_begin(0)
>>> for batch in range(4):
...     progress.on_train_batch_begin(batch)
...     progress.on_train_batch_end(batch)
Compiling the training step: the first step takes longer.
First step done in 10 s (compilation included).
training: step 4/20 | 6.4 img/s | about 2m40s left
"""

import sys
import time

import keras

LINE_EVERY_S = 30.0
REDRAW_EVERY_S = 0.5


class TrainingProgress(keras.callbacks.Callback):
    """Reports the run's progress inside each checkpoint interval.

    Args:
        log: where lines go (the loop's `log`).
        total_steps: the run's last step.
        checkpoint_freq: steps between evaluations.
        images_per_step: images in one step (all training domains).
        live: redraw one line on `stream` instead of writing lines to `log`
            (the loop sets it when its output is a terminal).
        stream: where the live line is drawn (default stderr).
        clock: seconds, monotonic (a test passes its own).
    """

    def __init__(
        self, log, total_steps, checkpoint_freq, images_per_step,
        live=False, stream=None, clock=time.monotonic,
    ):
        super().__init__()
        self.log = log
        self.total_steps = total_steps
        self.checkpoint_freq = checkpoint_freq
        self.images_per_step = images_per_step
        self.live = live
        self.stream = stream or sys.stderr
        self.clock = clock
        self.every_s = REDRAW_EVERY_S if live else LINE_EVERY_S
        self.step = 0
        self.compiled = False
        self.mark = None
        self.last_report = None
        self.train_seconds = 0.0
        self.train_steps = 0
        self.evaluation_seconds = None
        self.drawn = ""

    def at_step(self, step):
        """The run's step when the next `fit` starts."""
        self.step = step

    def evaluated(self, seconds):
        """How long the last checkpoint's evaluation took (counted in the time left)."""
        self.evaluation_seconds = seconds

    def on_epoch_begin(self, epoch, logs=None):
        self.mark = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        if not self.compiled and batch == 0:
            self.log("Compiling the training step: the first step takes longer.")

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        self.step += 1
        if not self.compiled:
            self.compiled = True
            self.log(f"First step done in {now - self.mark:.0f} s (compilation included).")
            self.last_report = now
        else:
            self.train_seconds += now - self.mark
            self.train_steps += 1
        self.mark = now
        if self.train_steps and now - self.last_report >= self.every_s:
            self.last_report = now
            self._report(self.line())

    def on_epoch_end(self, epoch, logs=None):
        if self.drawn:
            self.stream.write("\r" + " " * len(self.drawn) + "\r")
            self.stream.flush()
            self.drawn = ""

    def line(self):
        """`training: step S/T | R img/s | about D left` (D: steps and evaluations to come)."""
        steps_per_second = self.train_steps / max(self.train_seconds, 1e-9)
        left = (self.total_steps - self.step) / steps_per_second
        if self.evaluation_seconds is not None:
            left += self._evaluations_left() * self.evaluation_seconds
        return (
            f"training: step {self.step}/{self.total_steps} | "
            f"{steps_per_second * self.images_per_step:.1f} img/s | about {duration(left)} left"
        )

    def _evaluations_left(self):
        """Checkpoints at or after the current step: every `checkpoint_freq` steps and the last."""
        freq = self.checkpoint_freq
        return (self.total_steps - 1) // freq - (self.step - 1) // freq + 1

    def _report(self, line):
        if self.live:
            self.stream.write("\r" + line.ljust(len(self.drawn)))
            self.stream.flush()
            self.drawn = line
        else:
            self.log(line)


def duration(seconds):
    """`3h05m`, `4m10s` or `42s`.

    >>> duration(3725), duration(250.4), duration(42)
    ('1h02m', '4m10s', '42s')
    """
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
