"""The apps' host memory: freed blocks stay mapped for reuse, unless the user set glibc's malloc."""

import ast
import os
import platform
import subprocess
import sys

import pytest

from tests.app_runner import ROOT

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# Frees a 256 MB block and allocates it again; prints whether the setting was
# applied and the page faults of the second, written-through allocation.
_SECOND_ALLOCATION_FAULTS = """
import ctypes, resource
from host_memory import reuse_freed_memory
applied = reuse_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
def write_a_block():
    block = libc.malloc(256 << 20)
    ctypes.memset(block, 1, 256 << 20)
    libc.free(ctypes.c_void_p(block))
write_a_block()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
write_a_block()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

MODEL_APPS = ("finetune", "sweep", "evaluate", "predict", "export", "collect_results")


def second_allocation(**environment):
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith("MALLOC_") and key != "GLIBC_TUNABLES"
    }
    result = subprocess.run(
        [sys.executable, "-c", _SECOND_ALLOCATION_FAULTS],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**env, **environment, "PYTHONPATH": os.path.join(ROOT, "apps")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    applied, faults = result.stdout.split()
    return applied == "True", int(faults)


def test_a_freed_block_is_reused_without_page_faults():
    applied, faults = second_allocation()
    assert applied
    assert faults < 100


def test_without_the_setting_a_freed_block_is_faulted_in_again():
    applied, faults = second_allocation(MALLOC_ARENA_MAX="8")
    assert not applied
    assert faults > 60_000  # 256 MB in 4 KiB pages: 65,536


def test_the_users_glibc_tunables_win():
    applied, _ = second_allocation(GLIBC_TUNABLES="glibc.malloc.arena_max=2")
    assert not applied


@pytest.mark.parametrize("name", MODEL_APPS)
def test_every_app_that_runs_a_model_sets_it_and_onednn_before_tensorflow_starts(name):
    with open(os.path.join(ROOT, "apps", f"{name}.py")) as source:
        module = ast.parse(source.read())
    calls = [
        statement.value.func.id
        for statement in module.body
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
        and isinstance(statement.value.func, ast.Name)
    ]
    assert calls[:3] == ["reuse_freed_memory", "use_onednn_kernels", "start_tensorflow"]
