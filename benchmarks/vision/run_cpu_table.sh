#!/usr/bin/env bash
# The CPU-sized faithfulness table and Focus run reported in benchmarks/RESULTS.md.
# Usage: benchmarks/vision/run_cpu_table.sh OUT_DIR N_IMAGES N_MOSAICS
# Resumable: rerunning with the same OUT_DIR reuses the per-batch checkpoints.
set -euo pipefail
OUT=${1:-/tmp/spmm-bench}
N=${2:-4}
MOSAICS=${3:-16}
DATA=${SPMM_SHARED_DATA:-$(dirname "$0")/../../../shared/data}/imagenet-sample
PARAMS='{"smoothgrad": {"samples": 10}, "smooth_pullback": {"samples": 10}, "integrated_gradients": {"steps": 16}, "integrated_pullbacks": {"steps": 16}, "gradient_shap": {"samples": 10}, "fusiongrad": {"model_samples": 4, "input_samples": 4}}'
export OMP_NUM_THREADS=1
spmm bench faithfulness --model tf_efficientnet_lite0 --data "$DATA" --n "$N" --batch-size 4 \
  --explainer-params "$PARAMS" --out "$OUT/faithfulness"
spmm bench focus --model tf_efficientnet_lite0 --data "$DATA" --n "$MOSAICS" --batch-size 8 \
  --explainer-params "$PARAMS" --out "$OUT/focus"
