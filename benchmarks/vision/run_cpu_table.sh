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
EXPLAINER_PARAMS='{"smoothgrad": {"samples": 10}, "smooth_pullback": {"samples": 10}, "integrated_gradients": {"steps": 16}, "integrated_pullbacks": {"steps": 16}, "gradient_shap": {"samples": 10}, "fusiongrad": {"model_samples": 4, "input_samples": 4}}'
METRIC_PARAMS='{"infidelity": {"draws": 1}, "monotonicity_correlation": {"samples": 2}, "max_sensitivity": {"samples": 3}}'
# the explainers the paper's table reports first, so that a partial run covers them
EXPLAINERS=soft_pullback,gradient,guided_gradcam,pullback_ascent,smoothgrad,integrated_gradients,smooth_pullback,integrated_pullbacks,gradient_ascent,deeplift,gradient_shap,fusiongrad
export OMP_NUM_THREADS=1
spmm bench faithfulness --model tf_efficientnet_lite0 --data "$DATA" --n "$N" --batch-size 4 --explainers "$EXPLAINERS" \
  --explainer-params "$EXPLAINER_PARAMS" --metric-params "$METRIC_PARAMS" --out "$OUT/faithfulness" &
spmm bench focus --model tf_efficientnet_lite0 --data "$DATA" --n "$MOSAICS" --batch-size 8 --explainers "$EXPLAINERS" \
  --explainer-params "$EXPLAINER_PARAMS" --out "$OUT/focus" &
wait
