#!/usr/bin/env bash
# The full SPEC §4 faithfulness table (64 images, 12 explainers, 6 metrics, default settings),
# Focus on 40 mosaics and the speed table vs Quantus, on one CUDA GPU, as reported in
# benchmarks/RESULTS.md.
# Usage: benchmarks/vision/run_gpu_table.sh DATA_DIR OUT_DIR [SECONDS]
#   DATA_DIR: a labelled image folder such as ../shared/data/imagenet-sample
#   SECONDS:  wall-clock budget of the whole script (default 3600); the tables are stopped in time
#             to write the reports. The run is resumable: started again with the same OUT_DIR, it
#             continues where the budget stopped it.
# The speed table runs first and alone (timings are not shared with other work); then each table
# runs as one `spmm bench --ray` command: its (batch, explainer) checkpoints are computed by a local
# Ray Data actor pool sharing the GPU (WORKERS actors, one model each, --gpus-per-worker 1/WORKERS
# by default). Every pair is its own checkpoint and every metric seeds its own noise, so the pool
# does not change any number; the tables are written from the checkpoints. Needs the [scale] extra
# (pip install -c constraints.txt -e ".[scale]").
set -uo pipefail
DATA=${1:?DATA_DIR}
OUT=${2:?OUT_DIR}
BUDGET=${3:-3600}
# overridable for a quick check of this script: N images, MOSAICS, SPEED_N images, DEVICE, WORKERS, EXPLAINERS
N=${N:-64}; MOSAICS=${MOSAICS:-40}; SPEED_N=${SPEED_N:-16}; DEVICE=${DEVICE:-cuda}; WORKERS=${WORKERS:-6}
mkdir -p "$OUT/logs"
SPMM=spmm
COMMON=(--model efficientnet-lite0 --data "$DATA" --device "$DEVICE" --seed 0)
ALL=${EXPLAINERS:-soft_pullback,gradient,guided_gradcam,pullback_ascent,smoothgrad,integrated_gradients,smooth_pullback,integrated_pullbacks,gradient_ascent,deeplift,gradient_shap,fusiongrad}
# 4 images per batch and Max-sensitivity re-explaining 5 noisy copies at a time: with 50 samples or
# steps per explanation, larger chunks need > 60 GB of GPU memory per process (first attempt on an
# H200 ran out of memory); the report pass below uses the same settings, so it reads the same checkpoints
FAITHFULNESS=(bench faithfulness "${COMMON[@]}" --n "$N" --batch-size 4 --explainers "$ALL"
              --metric-params '{"max_sensitivity": {"chunk": 5}}' --out "$OUT/faithfulness")
FOCUS=(bench focus "${COMMON[@]}" --n "$MOSAICS" --batch-size 8 --explainers "$ALL" --out "$OUT/focus")

echo "== speed vs Quantus ($SPEED_N images, alone on the device)"
timeout 180 python3 benchmarks/vision/speed_vs_quantus.py --data "$DATA" --n "$SPEED_N" --device "$DEVICE" --samples 10 \
  --sensitivity-samples 10 --draws 5 --threads 4 --allow-tf32 --out "$OUT/speed_gpu.md" > "$OUT/logs/speed.log" 2>&1
echo "speed rc=$?"; cat "$OUT/speed_gpu.md" 2>/dev/null || tail -20 "$OUT/logs/speed.log"

# Focus (short) first, then the faithfulness table with the time that is left
for table in focus faithfulness; do
  LEFT=$(( BUDGET - SECONDS - 45 ))
  echo "== $table on $WORKERS Ray workers (${LEFT}s left)"
  if [ "$table" = focus ]; then args=("${FOCUS[@]}"); else args=("${FAITHFULNESS[@]}"); fi
  # SIGINT, so that the command shuts its Ray instance down before it exits
  timeout -s INT -k 60 "$LEFT" $SPMM "${args[@]}" --ray --workers "$WORKERS" > "$OUT/logs/$table.log" 2>&1
  rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then echo "$table failed (rc=$rc):"; tail -n 30 "$OUT/logs/$table.log"; exit 1; fi
done
echo "== reports"
$SPMM "${FAITHFULNESS[@]}" --report-only > "$OUT/faithfulness_report.md" 2>&1
$SPMM "${FOCUS[@]}" --report-only > "$OUT/focus_report.md" 2>&1
ls "$OUT"/faithfulness/checkpoints | wc -l
