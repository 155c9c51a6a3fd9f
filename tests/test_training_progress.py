"""TrainingProgress: what a run says between checkpoints, with a clock the test drives."""

import doctest
import io

from keras_ldrop.training import progress
from keras_ldrop.training.progress import TrainingProgress, duration


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def steps(callback, clock, count, seconds_each):
    callback.on_epoch_begin(0)
    for batch in range(count):
        callback.on_train_batch_begin(batch)
        clock.now += seconds_each
        callback.on_train_batch_end(batch)
    callback.on_epoch_end(0)


def test_the_module_examples_run():
    assert doctest.testmod(progress).failed == 0


def test_lines_every_30_s_count_steps_and_evaluations_left_and_leave_out_compilation():
    clock, lines = Clock(), []
    callback = TrainingProgress(
        lines.append, total_steps=100, checkpoint_freq=20, images_per_step=32, clock=clock
    )
    callback.at_step(0)
    callback.on_epoch_begin(0)
    callback.on_train_batch_begin(0)
    clock.now += 90.0
    callback.on_train_batch_end(0)
    callback.on_epoch_end(0)
    assert lines == [
        "Compiling the training step: the first step takes longer.",
        "First step done in 90 s (compilation included).",
    ]
    steps(callback, clock, 19, 2.0)
    assert lines[2:] == [
        "training: step 16/100 | 16.0 img/s | about 2m48s left",
    ]
    callback.evaluated(25.0)
    callback.at_step(20)
    steps(callback, clock, 20, 2.0)
    assert lines[3:] == [
        "training: step 31/100 | 16.0 img/s | about 3m58s left",
    ]
    assert sum("Compiling" in line for line in lines) == 1


def test_a_resumed_run_counts_from_its_step():
    clock, lines = Clock(), []
    callback = TrainingProgress(
        lines.append, total_steps=1000, checkpoint_freq=300, images_per_step=10, clock=clock
    )
    callback.at_step(600)
    steps(callback, clock, 40, 1.0)
    assert lines[-1] == "training: step 631/1000 | 10.0 img/s | about 6m09s left"


def test_on_a_terminal_one_line_is_redrawn_and_cleared_before_the_checkpoint_line():
    clock, lines, terminal = Clock(), [], io.StringIO()
    callback = TrainingProgress(
        lines.append, total_steps=10, checkpoint_freq=10, images_per_step=4,
        live=True, stream=terminal, clock=clock,
    )
    callback.at_step(0)
    steps(callback, clock, 4, 1.0)
    assert lines == [
        "Compiling the training step: the first step takes longer.",
        "First step done in 1 s (compilation included).",
    ]
    drawn = terminal.getvalue()
    assert drawn.count("\r") == 5
    assert "\rtraining: step 2/10 | 4.0 img/s | about 8s left" in drawn
    assert "\rtraining: step 4/10 | 4.0 img/s | about 6s left" in drawn
    assert drawn.endswith("\r" + " " * len("training: step 4/10 | 4.0 img/s | about 6s left") + "\r")


def test_durations_read_as_hours_minutes_seconds():
    assert [duration(s) for s in (0, 59.6, 61, 3599, 3600, 86399)] == [
        "0s", "1m00s", "1m01s", "59m59s", "1h00m", "23h59m",
    ]
