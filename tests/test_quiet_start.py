"""The apps' start-up: TensorFlow's and JAX's device-probing lines filtered, nothing else."""

import os
import subprocess
import sys

from quiet_start import START_UP_NOISE, native_stderr_without

from tests.app_runner import ROOT


def test_only_the_named_lines_are_dropped_from_native_stderr(capfd):
    with native_stderr_without(START_UP_NOISE):
        os.write(2, b"I0000 00:00:1 1 cudart_stub.cc:31] Could not find cuda drivers\n")
        os.write(2, b"E0000 00:00:1 1 cuda_platform.cc:52] failed call to cuInit: (303)\n")
        os.write(2, b"a real error from C++\n")
    assert capfd.readouterr().err == "a real error from C++\n"


def test_an_app_that_fails_prints_its_one_line_and_nothing_else():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "apps", "predict.py"), "--model=/nonexistent.keras",
         "/nonexistent.jpg"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("predict: error: ") and "/nonexistent.keras" in line


def test_with_tf_cpp_min_log_level_0_nothing_is_filtered():
    result = subprocess.run(
        [sys.executable, "-c", "from quiet_start import start_tensorflow; start_tensorflow()"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONPATH": os.path.join(ROOT, "apps")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cudart_stub.cc" in result.stderr or "cuInit" in result.stderr
