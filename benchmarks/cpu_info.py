"""Which CPU a benchmark ran on, so that its timings can be compared with others.

The machines we measure on change under us (a virtual machine's host: one week
an AVX-512/AMX Xeon, the next an AVX2-only AMD EPYC), and a kernel's speed
depends on the vector and matrix extensions it finds (bfloat16 most of all).
Every step benchmark records this with its timings.

  >>> import cpu_info
  >>> sorted(cpu_info.describe())
  ['cores', 'features', 'model']
"""

import os

# The extensions that decide the speed of float32 and bfloat16 convolutions and products.
FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def describe(cpuinfo_path="/proc/cpuinfo"):
    """`{"model", "cores", "features"}`: the CPU's model name, the cores this process may use, and which of `FEATURES` it has.

    Where `/proc/cpuinfo` cannot be read (not Linux), the model is `"unknown"` and the features empty.
    """
    model, flags = "unknown", set()
    if os.path.exists(cpuinfo_path):
        with open(cpuinfo_path) as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "cores": cores, "features": [name for name in FEATURES if name in flags]}


def summary(cpu):
    """One line for a table's header, e.g. `AMD EPYC, 2 cores, avx2 fma (no avx512f, no amx_bf16)`."""
    missing = [name for name in ("avx512f", "amx_bf16") if name not in cpu["features"]]
    absent = f" (no {', no '.join(missing)})" if missing else ""
    return f"{cpu['model']}, {cpu['cores']} cores, {' '.join(cpu['features']) or 'no avx2'}{absent}"
