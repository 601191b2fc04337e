#!/usr/bin/env bash
# The CPU-sized faithfulness table and Focus run reported in benchmarks/RESULTS.md.
# Usage: benchmarks/vision/run_cpu_table.sh OUT_DIR N_IMAGES N_MOSAICS
# Sampling explainers and noisy metrics use fewer draws than SPEC §4 so that the run fits a
# shared 2-core CPU (see RESULTS.md).  Resumable: rerun with the same OUT_DIR to reuse checkpoints.
set -euo pipefail
OUT=${1:-/tmp/spmm-bench}
N=${2:-4}
MOSAICS=${3:-16}
DATA=${SPMM_SHARED_DATA:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data}/imagenet-sample
# the explainers the paper's table reports first, so that a partial run covers them
EXPLAINERS=soft_pullback,gradient,guided_gradcam,pullback_ascent,smoothgrad,integrated_gradients,smooth_pullback,integrated_pullbacks,gradient_ascent,deeplift,gradient_shap,fusiongrad
export OMP_NUM_THREADS=1
spmm bench faithfulness --model efficientnet-lite0 --data "$DATA" --n "$N" --batch-size 4 --explainers "$EXPLAINERS" \
  --preset cpu-small --out "$OUT/faithfulness" &
spmm bench focus --model efficientnet-lite0 --data "$DATA" --n "$MOSAICS" --batch-size 8 --explainers "$EXPLAINERS" \
  --preset cpu-small --out "$OUT/focus" &
wait
