"""Times our fine-tuning step on each backend side by side with the PyTorch reference.

Runs `torch_reference_step.py` and `train_step.py` (once per backend, plus any
`--variants`) one after the other, `--rounds` times in turn, so that every
implementation sees the same machine state. Prints each run's JSON line, then
a table: the median over rounds of each run's seconds per step, images per
second, and the ratio to the reference's median (above 1: faster).

  python benchmarks/compare_steps.py --rounds=3 -- --image_size=112 --batch_size=32 --domains=3

Everything after `--` goes to both step scripts (`step_flags.py`).
"""

import json
import os
import statistics
import subprocess
import sys

from absl import app, flags

import cpu_info

_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds; each runs every implementation once.", lower_bound=1)
_BACKENDS = flags.DEFINE_list("backends", ["tensorflow", "jax", "torch"], "Keras backends to time.")
_VARIANTS = flags.DEFINE_multi_string(
    "variants", [],
    "More runs, as BACKEND:FLAGS, e.g. 'jax:--conv_gradients=xla' (Keras' own convolution gradients).",
)
_HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = "pytorch reference"


def _runs():
    ours = os.path.join(_HERE, "train_step.py")
    runs = [(REFERENCE, None, [os.path.join(_HERE, "torch_reference_step.py")])]
    for backend in _BACKENDS.value:
        runs.append((f"keras_ldrop {backend}", backend, [ours]))
    for variant in _VARIANTS.value:
        backend, _, extra = variant.partition(":")
        runs.append((f"keras_ldrop {backend} {extra}", backend, [ours, *extra.split()]))
    return runs


def _time_once(backend, command, step_args):
    environment = dict(os.environ)
    if backend:
        environment["KERAS_BACKEND"] = backend
    finished = subprocess.run(
        [sys.executable, *command, *step_args], env=environment, capture_output=True, text=True
    )
    lines = [line for line in finished.stdout.splitlines() if line.startswith("{")]
    if finished.returncode or not lines:
        called = " ".join([os.path.basename(command[0]), *command[1:], *step_args])
        if finished.returncode < 0:
            why = f"killed by signal {-finished.returncode} (by the kernel when out of memory, if 9)"
        else:
            why = " ".join(finished.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"compare_steps: error: {called} failed: {why}")
    return json.loads(lines[-1])


def main(argv):
    step_args = argv[1:]
    runs = _runs()
    seconds = {name: [] for name, _, _ in runs}
    for round_index in range(_ROUNDS.value):
        for name, backend, command in runs:
            result = _time_once(backend, command, step_args)
            seconds[name].append(result["seconds_per_step"])
            print(json.dumps({"round": round_index, "name": name, **result}), flush=True)
    settings = result["settings"]
    images = settings["batch_size"] * settings["domains"]
    reference = statistics.median(seconds[REFERENCE])
    print(f"\nmedian over {_ROUNDS.value} rounds of each run's median step; step flags: {' '.join(step_args) or '(defaults)'}")
    print(f"CPU: {cpu_info.summary(result['cpu'])}")
    print(f"{'implementation':48} {'s/step':>8} {'images/s':>9} {'vs reference':>12}  per round (s/step)")
    for name, _, _ in runs:
        median = statistics.median(seconds[name])
        rounds = ", ".join(f"{s:.2f}" for s in seconds[name])
        print(f"{name:48} {median:8.2f} {images / median:9.1f} {reference / median:12.2f}  {rounds}")


if __name__ == "__main__":
    app.run(main)
