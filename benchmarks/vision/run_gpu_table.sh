#!/usr/bin/env bash
# The full SPEC §4 faithfulness table (64 images, 12 explainers, 6 metrics, default settings),
# Focus on 40 mosaics and the speed table vs Quantus, on one CUDA GPU, as reported in
# benchmarks/RESULTS.md.
# Usage: benchmarks/vision/run_gpu_table.sh DATA_DIR OUT_DIR [SECONDS]
#   DATA_DIR: a labelled image folder such as ../shared/data/imagenet-sample
#   SECONDS:  wall-clock budget of the whole script (default 3600); the tables are stopped in time
#             to write the reports. The run is resumable: started again with the same OUT_DIR, it
#             continues where the budget stopped it.
# The speed table runs first and alone (timings are not shared with other work); then the
# explainers run as parallel processes that write into the same checkpoint folder (every
# (batch, explainer) pair is its own checkpoint and every metric seeds its own noise, so the
# split does not change any number), and the tables are written from the checkpoints.
set -uo pipefail
DATA=${1:?DATA_DIR}
OUT=${2:?OUT_DIR}
BUDGET=${3:-3600}
# overridable for a quick check of this script: N images, MOSAICS, SPEED_N images, DEVICE
N=${N:-64}; MOSAICS=${MOSAICS:-40}; SPEED_N=${SPEED_N:-16}; DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT/logs"
SPMM="python3 -m spmm.cli"
COMMON=(--model efficientnet-lite0 --data "$DATA" --device "$DEVICE" --seed 0)
ALL=soft_pullback,gradient,guided_gradcam,pullback_ascent,smoothgrad,integrated_gradients,smooth_pullback,integrated_pullbacks,gradient_ascent,deeplift,gradient_shap,fusiongrad
EXPLAINER_GROUPS=(smoothgrad smooth_pullback fusiongrad integrated_gradients,integrated_pullbacks
                  gradient_shap,pullback_ascent,gradient_ascent)

echo "== speed vs Quantus ($SPEED_N images, alone on the device)"
timeout 180 python3 benchmarks/vision/speed_vs_quantus.py --data "$DATA" --n "$SPEED_N" --device "$DEVICE" --samples 10 \
  --sensitivity-samples 10 --draws 5 --threads 4 --allow-tf32 --out "$OUT/speed_gpu.md" > "$OUT/logs/speed.log" 2>&1
echo "speed rc=$?"; cat "$OUT/speed_gpu.md" 2>/dev/null || tail -20 "$OUT/logs/speed.log"

TABLES=$(( BUDGET - SECONDS - 45 ))
echo "== tables (${TABLES}s left for them)"
pids=()
# the four single-pass explainers run 16 images per batch; the sampling ones 4, and Max-sensitivity
# re-explains 5 noisy copies at a time: with 50 samples or steps per explanation, larger chunks
# need > 60 GB of GPU memory per process (first attempt on an H200 ran out of memory)
timeout "$TABLES" $SPMM bench faithfulness "${COMMON[@]}" --n "$N" --batch-size 16 \
  --explainers soft_pullback,gradient,deeplift,guided_gradcam --out "$OUT/faithfulness" > "$OUT/logs/faithfulness_cheap.log" 2>&1 &
pids+=($!)
for group in "${EXPLAINER_GROUPS[@]}"; do
  timeout "$TABLES" $SPMM bench faithfulness "${COMMON[@]}" --n "$N" --batch-size 4 --explainers "$group" \
    --metric-params '{"max_sensitivity": {"chunk": 5}}' --out "$OUT/faithfulness" > "$OUT/logs/faithfulness_${group//,/_}.log" 2>&1 &
  pids+=($!)
done
timeout "$TABLES" $SPMM bench focus "${COMMON[@]}" --n "$MOSAICS" --batch-size 8 --explainers "$ALL" \
  --out "$OUT/focus" > "$OUT/logs/focus.log" 2>&1 &
pids+=($!)
# fail fast: a process that dies at once (a device or import error) stops everything
sleep 60
for pid in "${pids[@]}"; do
  if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; rc=$?; else rc=0; fi
  if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then
    echo "a benchmark process failed early:"; tail -n 30 "$OUT"/logs/*.log; kill "${pids[@]}" 2>/dev/null; exit 1
  fi
done
wait "${pids[@]}"
echo "== reports"
$SPMM bench faithfulness "${COMMON[@]}" --n "$N" --batch-size 16 --explainers "$ALL" --out "$OUT/faithfulness" --report-only \
  > "$OUT/faithfulness_report.md" 2>&1
$SPMM bench focus "${COMMON[@]}" --n "$MOSAICS" --batch-size 8 --explainers "$ALL" --out "$OUT/focus" --report-only \
  > "$OUT/focus_report.md" 2>&1
ls "$OUT"/faithfulness/checkpoints | wc -l
