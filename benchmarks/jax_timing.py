"""What the JAX operation benchmarks share: `--repeats`, the timer and the backend check."""

import statistics
import sys
import time

from absl import flags

REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per measurement (median).", lower_bound=1)


def require_jax(program):
    """Exits with one line unless the Keras backend is JAX."""
    import keras

    if keras.backend.backend() != "jax":
        sys.exit(f"{program}: error: times the JAX backend; KERAS_BACKEND is {keras.backend.backend()!r}")


def median_seconds(function, *args):
    """Median seconds of `--repeats` calls of `function(*args)`, after one untimed call."""
    import jax

    jax.block_until_ready(function(*args))
    times = []
    for _ in range(REPEATS.value):
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)
