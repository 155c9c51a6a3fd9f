#!/usr/bin/env bash
# One prepared accelerator check, under 8 minutes on an H200: ResNet-50 fine-tuning
# images/s at 224 px in bf16 (96 images per step: 32 from each of 3 domains) on each
# Keras backend (and torch with jit_compile=True, i.e. torch.compile) and on the
# plain-PyTorch reference, plus the tf.data training stream's
# images/s on the machine's cores; prints a table. Every measurement is a JSON line in
# $OUT (default /tmp/gpu_check); a part that cannot run says why in the table.
#
#   bash benchmarks/gpu_check.sh
#   STEP_ARGS="--image_size=32 --batch_size=2 --steps=1 --warmup=1" PIPELINE_SECONDS=2 \
#     bash benchmarks/gpu_check.sh      # a quick dry run of the script itself
#
# Where keras / keras-hub are not installed (the lent GPU machine has torch and jax
# only), carry their wheels in .whl/ (see BUILD_NOTES.md): they are installed first.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1

read -r -a STEP <<< "${STEP_ARGS:---image_size=224 --batch_size=32 --domains=3 --steps=10 --warmup=3 --precision=mixed_bfloat16}"
PIPELINE_SECONDS=${PIPELINE_SECONDS:-20}

measure() {  # measure NAME COMMAND...: the command's last stdout line, or an error record
  local name=$1; shift
  if timeout 170 "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"; then
    tail -n 1 "$OUT/$name.out" > "$OUT/$name.json"
  else
    "$PY" -c 'import json,sys; print(json.dumps({"implementation": sys.argv[1], "error": sys.argv[2][-300:]}))' \
      "$name" "$(grep -v '^\s*$' "$OUT/$name.err" | tail -n 1)" > "$OUT/$name.json"
  fi
}

measure pytorch_reference "$PY" benchmarks/torch_reference_step.py "${STEP[@]}"
for backend in jax torch tensorflow; do
  KERAS_BACKEND=$backend measure "keras_$backend" "$PY" benchmarks/train_step.py "${STEP[@]}"
done
KERAS_BACKEND=torch measure keras_torch_compiled "$PY" benchmarks/train_step.py "${STEP[@]}" --jit_compile=true
measure tf_data_pipeline bash -c "$PY benchmarks/pipeline_throughput.py --dataset=pacs \
  --data_dir=/tmp/gpu_check_data --write_sample_tree --image_size=224 --seconds=$PIPELINE_SECONDS"

"$PY" - "$OUT" <<'PYTHON'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print("GPU:", (out / "gpu.txt").read_text().strip())
rows = {}
for name in ("pytorch_reference", "keras_jax", "keras_torch", "keras_torch_compiled",
             "keras_tensorflow", "tf_data_pipeline"):
    record = json.loads((out / f"{name}.json").read_text())
    rows[name] = record
reference = rows["pytorch_reference"].get("images_per_second")
print(f"{'what':<22} {'images/s':>10} {'vs reference':>13} {'peak GPU GiB':>13}  note")
for name, record in rows.items():
    rate = record.get("images_per_second")
    peak = record.get("peak_device_memory_bytes")
    ratio = f"{rate / reference:.2f}" if rate and reference and name != "tf_data_pipeline" else "-"
    print(f"{name:<22} {rate if rate is None else round(rate, 1)!s:>10} {ratio:>13} "
          f"{'-' if not peak else round(peak / 2**30, 1)!s:>13}  {record.get('error', '')}")
PYTHON
