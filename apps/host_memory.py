"""The apps keep the host memory a training step frees, for the next step (glibc).

On the CPU, XLA (JAX), TensorFlow and PyTorch take each step's large temporary
buffers from `malloc`. glibc maps a block over 32 MB (over 64 MB in a
thread's own arena) freshly with `mmap` and unmaps it on `free`, so every step
page-faults its temporaries in again: under JAX, 7.1 million page faults and
19 of 80 CPU seconds in the kernel in a 13-step EfficientNet-Lite0 benchmark
run (BUILD_NOTES.md, "Host memory reuse"). `reuse_freed_memory()` sets, before
any other thread starts, one malloc arena (`M_ARENA_MAX` 1), no `mmap` for
large blocks (`M_MMAP_MAX` 0) and no trimming of the heap (`M_TRIM_THRESHOLD`
-1): freed blocks stay mapped and the next step reuses them. The process
keeps its peak memory until it exits.

It must run before TensorFlow, JAX or PyTorch is imported (a thread that has
already allocated keeps its own arena). It changes nothing where the C library
is not glibc, or where the user set glibc's malloc variables
(`MALLOC_ARENA_MAX`, `MALLOC_MMAP_MAX_`, `MALLOC_TRIM_THRESHOLD_`,
`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TOP_PAD_`, or `glibc.malloc` tunables in
`GLIBC_TUNABLES`): theirs apply. Code of one's own (`model.fit`) gets the same
by starting Python with `MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=18446744073709551615` in its environment.

    from host_memory import reuse_freed_memory
    reuse_freed_memory()
"""

import ctypes
import ctypes.util
import os
import platform

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_USER_SETTINGS = (
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_MAX_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
)


def reuse_freed_memory():
    """Makes glibc's malloc keep and reuse freed blocks; True if it was set.

    False, with nothing changed, where the C library is not glibc or the
    environment already sets glibc's malloc behaviour.
    """
    if platform.libc_ver()[0] != "glibc" or _set_by_user():
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    for parameter, value in (
        (_M_ARENA_MAX, 1),
        (_M_MMAP_MAX, 0),
        (_M_TRIM_THRESHOLD, -1),
    ):
        if not libc.mallopt(parameter, value):
            raise OSError(f"glibc refused mallopt({parameter}, {value}).")
    return True


def _set_by_user():
    return any(name in os.environ for name in _USER_SETTINGS) or (
        "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")
    )
