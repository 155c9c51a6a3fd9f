"""Runs tiny fine-tuning jobs one after the other in one process; prints each one's memory and time.

The jobs go through `InProcessLauncher`, as `apps/sweep.py launch
--launcher=in_process` runs them: the same dataset and backbone, one job per
weight decay (so each has its own folder). After each job (and the
launcher's clean-up) a table row gives:

- `seconds`, `CPU s`: the job's wall time and CPU time (all threads; the CPU
  time is less disturbed by other processes on the machine);
- `GC s`: the time Python's garbage collector ran during the job;
- `full GC ms`: the time of one full collection after the job, which walks
  every object the collector tracks, leaked ones too;
- `RSS MB`, `change`: the process's resident memory (VmRSS) and its change;
- `objects`: the number of objects the collector tracks.

Then one JSON line with every figure. Memory or objects that keep growing
from job to job are state that outlives a job.

  KERAS_BACKEND=tensorflow python benchmarks/sweep_memory.py --runs=10
  KERAS_BACKEND=jax python benchmarks/sweep_memory.py --runs=4 --backbone=PRESET_FOLDER
"""

import gc
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_ldrop.experiments.launchers import InProcessLauncher  # noqa: E402
from keras_ldrop.experiments.sweep import make_jobs  # noqa: E402

_RUNS = flags.DEFINE_integer("runs", 10, "Jobs run one after the other.")
_DATASET = flags.DEFINE_string("dataset", "vlcs_mini", "Dataset of every job.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of the downloaded datasets (registered datasets that are not offline).")
_BACKBONE = flags.DEFINE_string("backbone", None, "Backbone of every job; default the dataset's (the minis: offline EfficientNet-Lite0).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Image side.")
_STEPS = flags.DEFINE_integer("steps", 2, "Updates per job (one checkpoint at the end).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 2, "Images per training domain per update.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "The sweep's folder; default a temporary one, removed at the end.")

TABLE_HEADER = (
    f"{'run':>3} {'seconds':>8} {'CPU s':>7} {'GC s':>6} {'full GC ms':>10} "
    f"{'RSS MB':>8} {'change':>7} {'objects':>9}"
)


def resident_megabytes():
    """The process's resident memory now (VmRSS of /proc/self/status), in MB.

    >>> resident_megabytes() > 0
    True
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmRSS line")


class GarbageCollectionClock:
    """Adds up the time Python's garbage collector runs, from `gc.callbacks`.

    >>> with GarbageCollectionClock() as clock:
    ...     _ = gc.collect()
    >>> clock.seconds > 0
    True
    """

    def __init__(self):
        self.seconds = 0.0
        self._started = None

    def _record(self, phase, info):
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self):
        gc.callbacks.append(self._record)
        return self

    def __exit__(self, *exception):
        gc.callbacks.remove(self._record)


def tiny_jobs(output_dir, runs):
    """`runs` tiny jobs of the flags' settings, one per weight decay."""
    settings = dict(
        image_size=_IMAGE_SIZE.value, steps=_STEPS.value,
        checkpoint_freq=_STEPS.value, batch_size=_BATCH_SIZE.value,
    )
    if _BACKBONE.value:
        settings["backbone"] = _BACKBONE.value
    if _DATA_DIR.value:
        settings["data_dir"] = _DATA_DIR.value
    return make_jobs(
        output_dir, _DATASET.value, rates=[0.9], lrs=[1e-3],
        weight_decays=[1e-5 * (run + 1) for run in range(runs)],
        trials=1, test_envs=[0], **settings,
    )


def timed_full_collection():
    """Runs one full garbage collection; returns its duration in ms."""
    started = time.perf_counter()
    gc.collect()
    return round(1000 * (time.perf_counter() - started))


def run_jobs(jobs):
    """Runs each job through its own `InProcessLauncher.launch`; yields its figures."""
    launcher = InProcessLauncher(log=lambda line: None)
    for index, job in enumerate(jobs, 1):
        started, cpu_started = time.perf_counter(), time.process_time()
        with GarbageCollectionClock() as collection:
            report = launcher.launch([job])
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        if report.failed:
            raise RuntimeError(f"job {index} failed: {report.failed[0][1]}")
        yield {
            "run": index,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "gc_seconds": round(collection.seconds, 2),
            "full_collection_ms": timed_full_collection(),
            "rss_mb": round(resident_megabytes(), 1),
            "python_objects": len(gc.get_objects()),
        }


def table_row(row, previous_mb):
    return (
        f"{row['run']:3d} {row['seconds']:8.1f} {row['cpu_seconds']:7.1f} "
        f"{row['gc_seconds']:6.2f} {row['full_collection_ms']:10d} {row['rss_mb']:8.0f} "
        f"{row['rss_mb'] - previous_mb:+7.0f} {row['python_objects']:9d}"
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if _RUNS.value < 2:
        raise app.UsageError(f"--runs must be at least 2; received {_RUNS.value}")
    with tempfile.TemporaryDirectory() as scratch:
        jobs = tiny_jobs(_OUTPUT_DIR.value or scratch, _RUNS.value)
        previous_mb = resident_megabytes()
        print(f"backend {keras.backend.backend()}; RSS before the first job {previous_mb:.0f} MB")
        print(TABLE_HEADER)
        rows = []
        for row in run_jobs(jobs):
            print(table_row(row, previous_mb), flush=True)
            rows.append(row)
            previous_mb = row["rss_mb"]
    first, last, later = rows[0], rows[-1], len(rows) - 1
    print(json.dumps({
        "benchmark": "sweep_memory",
        "backend": keras.backend.backend(),
        "settings": {"dataset": _DATASET.value, "backbone": _BACKBONE.value or "default",
                     "image_size": _IMAGE_SIZE.value, "steps": _STEPS.value,
                     "batch_size": _BATCH_SIZE.value},
        "runs": rows,
        "rss_growth_mb_per_run_after_first": round((last["rss_mb"] - first["rss_mb"]) / later, 1),
        "objects_growth_per_run_after_first": round(
            (last["python_objects"] - first["python_objects"]) / later),
        "median_seconds": statistics.median(row["seconds"] for row in rows),
        "median_cpu_seconds": statistics.median(row["cpu_seconds"] for row in rows),
    }))


if __name__ == "__main__":
    app.run(main)
