"""The apps ask TensorFlow for its oneDNN kernels on x86 CPUs, unless the user chose."""

import os
import platform
import subprocess
import sys

import pytest

from tests.app_runner import ROOT

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="set on x86 CPUs only"
)

# Prints whether the setting was made here and whether TensorFlow then runs oneDNN's kernels.
_ONEDNN_IN_USE = """
from tensorflow_kernels import use_onednn_kernels
applied = use_onednn_kernels()
from tensorflow.python.util import _pywrap_util_port
print(applied, _pywrap_util_port.IsMklEnabled())
"""


def onednn_in_use(**environment):
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run(
        [sys.executable, "-c", _ONEDNN_IN_USE],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**env, **environment, "PYTHONPATH": os.path.join(ROOT, "apps"), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    applied, enabled = result.stdout.split()
    return applied == "True", enabled == "True"


def test_tensorflow_runs_onednn_kernels_whatever_the_cpu():
    assert onednn_in_use() == (True, True)


def test_the_users_choice_wins():
    assert onednn_in_use(TF_ENABLE_ONEDNN_OPTS="0") == (False, False)
