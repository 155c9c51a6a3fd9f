"""`start_tensorflow()`, before the other imports: start-up without the lines that read as errors.

Importing TensorFlow and finding its devices write, on a machine without a
GPU, lines such as `I0000 ... cudart_stub.cc:31] Could not find cuda drivers
on your machine` and `E0000 ... failed call to cuInit: ... UNKNOWN ERROR
(303)` to the process's stderr, from C++ and before TensorFlow's own log
level applies, and, with oneDNN's kernels on (`tensorflow_kernels.py`), a
notice that they may round differently. A new user reads them as errors.
`start_tensorflow` sets `TF_CPP_MIN_LOG_LEVEL=2` (TensorFlow's info and
warnings off) unless it is set, imports TensorFlow and lists its devices
with stderr captured, then writes back every captured line but those known
ones: nothing else is hidden. With `TF_CPP_MIN_LOG_LEVEL=0` nothing is
filtered at all. Under the JAX backend, JAX's log line that no TPU library
was found (printed on every machine without one) is left out too.

    from quiet_start import start_tensorflow
    start_tensorflow()
"""

import contextlib
import logging
import os
import sys
import tempfile

START_UP_NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "cudart_stub.cc",
    "failed call to cuInit",
    "oneDNN custom operations are on",
)


def start_tensorflow():
    """Imports TensorFlow and finds its devices, without the start-up noise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    everything = os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    noise = () if everything else START_UP_NOISE
    if not everything:
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    with native_stderr_without(noise):
        import tensorflow as tf

        tf.config.list_physical_devices()


@contextlib.contextmanager
def native_stderr_without(noise):
    """Captures file descriptor 2 (C++ code writes there too) and writes it
    back on exit, less the lines that contain one of `noise`.

    Example:

    >>> with native_stderr_without(["chatter"]):
    ...     _ = os.write(2, b"chatter from C++\\nkept\\n")
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not any(pattern in line for pattern in noise)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
