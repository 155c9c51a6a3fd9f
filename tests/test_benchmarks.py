"""The step benchmarks run and print what they promise (no timing is checked)."""

import json
import os
import subprocess
import sys

import cpu_info
import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_STEP = ["--image_size=32", "--batch_size=1", "--domains=2", "--steps=2", "--warmup=1"]


@pytest.mark.parametrize("architecture", ["resnet50", "efficientnet_lite0"])
def test_side_by_side_prints_every_run_and_the_ratio_table(architecture):
    backend = keras.backend.backend()
    finished = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "compare_steps.py"), "--rounds=1",
         f"--backends={backend}", "--", *TINY_STEP, f"--architecture={architecture}"],
        capture_output=True, text=True, timeout=900,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    runs = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert [run["implementation"] for run in runs] == ["pytorch_reference", "keras_ldrop"]
    reference, ours = runs
    assert ours["backend"] == backend
    for run in runs:
        assert run["settings"]["image_size"] == 32 and len(run["step_seconds"]) == 2
        assert run["images_per_second"] > 0
        assert run["cpu"] == cpu_info.describe()
    assert ours["settings"]["cpu_convolutions"] is (backend in ("jax", "torch"))
    assert reference["settings"]["backbone"].startswith(architecture)
    assert ours["settings"]["backbone"] == architecture
    table = finished.stdout.split("vs reference")[1].splitlines()[1:]
    assert [line[:48].strip() for line in table] == ["pytorch reference", f"keras_ldrop {backend}"]
    ratio = float(table[1][48:].split()[2])
    assert ratio == round(reference["seconds_per_step"] / ours["seconds_per_step"], 2)
    assert f"CPU: {cpu_info.summary(ours['cpu'])}" in finished.stdout.splitlines()


def test_cpu_description_reads_the_model_and_the_extensions_that_decide_speed(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 fma avx512f\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 fma avx512f\n"
    )
    cpu = cpu_info.describe(str(cpuinfo))
    assert cpu["model"] == "AMD EPYC" and cpu["features"] == ["avx2", "fma", "avx512f"]
    assert cpu["cores"] >= 1
    assert cpu_info.summary(cpu) == f"AMD EPYC, {cpu['cores']} cores, avx2 fma avx512f (no amx_bf16)"
    unknown = cpu_info.describe(str(tmp_path / "absent"))
    assert unknown["model"] == "unknown" and unknown["features"] == []


def test_side_by_side_names_a_failing_run():
    finished = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "compare_steps.py"), "--rounds=1",
         "--backends=tensorflow", "--", "--image_size=-3"],
        capture_output=True, text=True, timeout=300,
    )
    assert finished.returncode == 1
    assert finished.stderr.startswith("compare_steps: error: ")
    assert "torch_reference_step.py --image_size=-3 failed" in finished.stderr
    assert "--image_size=-3" in finished.stderr.split("failed: ")[1]


def test_side_by_side_says_when_a_run_was_killed():
    import compare_steps

    suicide = ["-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    with pytest.raises(SystemExit, match=r"failed: killed by signal 9 \(by the kernel when out of memory"):
        compare_steps._time_once(None, suicide, [])


def test_inference_throughput_prints_its_json_line(tmp_path):
    from tests.conftest import _tiny_keras_hub_resnet
    import keras_ldrop

    model = keras_ldrop.build_classifier(
        _tiny_keras_hub_resnet(), 5, image_size=32,
        class_names=["bird", "car", "chair", "dog", "person"],
    )
    model.save(tmp_path / "tiny.keras")
    finished = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "inference_throughput.py"),
         f"--model={tmp_path / 'tiny.keras'}", "--copies=1", "--batch_size=16"],
        capture_output=True, text=True, timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    (line,) = [line for line in finished.stdout.splitlines() if line.startswith("{")]
    result = json.loads(line)
    assert (result["images"], result["image_size"], result["backend"]) == (
        187, 32, keras.backend.backend()
    )
    assert result["predict_images_per_second"] > 0 and result["evaluate_images_per_second"] > 0


def test_feature_health_prints_a_line_per_checkpoint(tmp_path, tiny_vlcs_tree, tiny_preset_folder):
    finished = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "feature_health.py"),
         "--dataset=vlcs", f"--data_dir={tiny_vlcs_tree}", f"--backbone={tiny_preset_folder}",
         "--image_size=32", "--batch_size=2", "--steps=2", "--checkpoint_freq=1",
         "--probe_images=8", f"--output_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    lines = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert [line["step"] for line in lines] == [1, 2]
    for line in lines:
        assert 0.0 <= line["dead_fraction"] <= 1.0 and line["feature_std"] >= 0.0
        assert 0.0 <= line["iid"] <= 1.0 and 0.0 <= line["ood"] <= 1.0


def test_evaluation_selection_compares_both_evaluations_of_one_training(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder
):
    finished = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "evaluation_selection.py"),
         "--dataset=vlcs", f"--data_dir={tiny_vlcs_tree}", f"--backbone={tiny_preset_folder}",
         "--rates=0.5", "--test_envs=1", "--image_size=32", "--batch_size=2", "--steps=2",
         "--checkpoint_freq=2", f"--output_dir={tmp_path}"],
        capture_output=True, text=True, timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    (row,) = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert (row["rate"], row["test_env"]) == (0.5, 1)
    assert row["augmented_step"] == row["clean_step"] == 2
    assert "rate 0.5: mean o.o.d. of the chosen checkpoints" in finished.stdout
    folder = tmp_path / "rate0.5-env1"
    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    clean = json.loads((folder / "clean_records.json").read_text())
    assert [r["hparams"]["augment_evaluation"] for r in records] == [True]
    # The held-out domain is evaluated clean both ways: the same model at each checkpoint.
    for record, clean_record in zip(records, clean, strict=True):
        for part in ("in", "out"):
            assert record[f"env1_{part}_acc"] == clean_record[f"env1_{part}_acc"]


def test_evaluation_cost_times_both_ways_on_the_same_logits(tiny_vlcs_tree, tiny_preset_folder):
    finished = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "evaluation_cost.py"),
         "--dataset=vlcs", f"--data_dir={tiny_vlcs_tree}", f"--backbone={tiny_preset_folder}",
         "--image_size=32", "--calls=2"],
        capture_output=True, text=True, timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    lines = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert [line["way"] for line in lines] == ["split_by_split", "one_pass_built_once"]
    assert all(line["splits"] == 8 and line["later_call_s"] > 0 for line in lines)
    largest = float(finished.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1])
    assert largest < 1e-4


def test_sweep_memory_prints_every_runs_memory_and_time(tiny_vlcs_tree, tiny_preset_folder):
    finished = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "sweep_memory.py"), "--runs=2",
         "--dataset=vlcs", f"--data_dir={tiny_vlcs_tree}", f"--backbone={tiny_preset_folder}",
         "--image_size=32", "--batch_size=2", "--steps=1"],
        capture_output=True, text=True, timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    lines = finished.stdout.splitlines()
    table_rows = [line.split() for line in lines if line[:3].strip().isdigit()]
    assert [row[0] for row in table_rows] == ["1", "2"]
    result = json.loads(lines[-1])
    assert result["backend"] == keras.backend.backend()
    assert [run["run"] for run in result["runs"]] == [1, 2]
    for run in result["runs"]:
        assert run["rss_mb"] > 0 and run["seconds"] > 0 and run["python_objects"] > 0
        assert 0 <= run["gc_seconds"] <= run["seconds"] and run["full_collection_ms"] >= 0


def run_jax_benchmark(name, *args):
    """Runs `benchmarks/<name>.py` under this backend: the finished run under JAX; elsewhere
    checks that it refused with its one line, and returns None."""
    finished = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", f"{name}.py"), *args],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    if keras.backend.backend() != "jax":
        assert finished.returncode == 1
        assert finished.stderr.strip().splitlines()[-1].startswith(f"{name}: error: times the JAX backend")
        return None
    assert finished.returncode == 0, finished.stderr[-2000:]
    return finished


def test_depthwise_conv_times_both_ways_on_jax_and_refuses_other_backends():
    finished = run_jax_benchmark("depthwise_conv", "--batch=2", "--repeats=1")
    if finished is None:
        return
    rows = [json.loads(line) for line in finished.stdout.splitlines()]
    assert len(rows) == 4
    assert all(row["xla_with_gradients_ms"] > 0 and row["shifted_with_gradients_ms"] > 0 for row in rows)
    assert max(row["kernel_gradient_relative_difference"] for row in rows) < 1e-4


def test_max_pool_times_both_ways_on_jax_and_refuses_other_backends():
    finished = run_jax_benchmark("max_pool", "--repeats=1")
    if finished is None:
        return
    rows = [json.loads(line) for line in finished.stdout.splitlines()]
    assert [row["shape"] for row in rows] == [
        "48 x 50x50x64, 3x3/2", "96 x 58x58x64, 3x3/2", "96 x 114x114x64, 3x3/2"
    ]
    for row in rows:
        assert all(row[f"{way}_{what}_ms"] > 0 for way in ("xla", "windows") for what in ("forward", "with_gradient"))
        assert row["gradient_max_difference"] < 1e-4


def test_conv_gradients_times_both_ways_on_jax_and_refuses_other_backends():
    finished = run_jax_benchmark("conv_gradients", "--batch=1", "--repeats=1")
    if finished is None:
        return
    rows = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 6
    for row in rows:
        assert all(row[f"{method}_{what}_ms"] > 0 for method in ("xla", "matmul") for what in ("forward", "with_gradients"))
    assert finished.stdout.splitlines()[-1].startswith(rows[-1]["shape"])


def test_torch_step_memory_counts_the_tensors_of_each_way_and_refuses_other_backends():
    # ResNet-50, whose BatchNorm outputs and residual sums are what releasing saves, on
    # enough images that the forward pass, not the optimizer's update, holds the peak.
    finished = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "torch_step_memory.py"),
         "--image_size=64", "--batch_size=8", "--domains=2", "--warmup=1", "--top=2"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    if keras.backend.backend() != "torch":
        assert finished.returncode == 1
        assert finished.stderr.strip().splitlines()[-1].startswith("torch_step_memory: error: measures the torch backend")
        return
    assert finished.returncode == 0, finished.stderr[-2000:]
    rows = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert [row["implementation"] for row in rows] == [
        "keras_ldrop torch, outputs kept", "keras_ldrop torch, outputs released", "pytorch reference",
    ]
    for row in rows:
        assert row["peak_tensor_bytes"] > 0 and 1 <= len(row["alive_at_peak_by_caller"]) <= 2
        assert sum(row["alive_at_peak_by_caller"].values()) <= row["peak_tensor_bytes"]
    assert rows[1]["peak_tensor_bytes"] < rows[0]["peak_tensor_bytes"]
