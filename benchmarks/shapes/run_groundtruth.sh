#!/usr/bin/env bash
# The ground-truth runs of benchmarks/RESULTS.md ("Ground truth"), on the embedded shapes models.
# Usage: benchmarks/shapes/run_groundtruth.sh OUT_DIR [N_MASK] [N_FAITH] [N_STUDY] [MODELS]
#   N_MASK:  scenes for the mask metrics, all 16 methods at the SPEC settings (cheap: explanations only)
#   N_FAITH: scenes for the paper's six faithfulness metrics, --preset cpu-small (costly)
#   N_STUDY: scenes of the counterfactual study (the temperature study uses 64 per split)
# WEIGHTS_DIR=DIR (optional): use DIR/shapes_<arch>.safetensors instead of the shipped weights.
# Scenes: seed 0 (bench), 2 (counterfactual, temperature test), 3 (temperature tuning); the
# models were trained on seed 1.  Resumable: the bench reuses its checkpoints in OUT_DIR.
set -euo pipefail
OUT=${1:-/tmp/spmm-shapes}
N_MASK=${2:-64}
N_FAITH=${3:-32}
N_STUDY=${4:-100}
MODELS=${5:-shapes-resnet,shapes-vgg,shapes-vit}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export OMP_NUM_THREADS=1
weights() { [ -n "${WEIGHTS_DIR:-}" ] && echo "--weights $WEIGHTS_DIR/${1//-/_}.safetensors" || true; }
MASK_METRICS=mass_accuracy,rank_accuracy,mask_auroc,pointing_hit
FAITH_METRICS=infidelity,faithfulness_correlation,faithfulness_estimate,monotonicity_correlation,max_sensitivity,random_logit
for model in ${MODELS//,/ }; do
  spmm bench groundtruth --model "$model" $(weights "$model") --n "$N_MASK" --batch-size 16 \
    --metrics "$MASK_METRICS" --out "$OUT/$model/mask"
  python "$ROOT/examples/shapes_counterfactual.py" --model "$model" $(weights "$model") --n "$N_STUDY" \
    --out "$OUT/$model/counterfactual"
  # peers next to SoftPullback, where spmm[peers] is installed (zennit's LRP composites are for CNNs)
  if [ "$model" != shapes-vit ] && python -c "import zennit" 2>/dev/null; then
    spmm bench groundtruth --model "$model" $(weights "$model") --n "$N_MASK" --batch-size 16 --metrics "$MASK_METRICS" \
      --explainers soft_pullback,zennit:epsilon_plus_flat,zennit:epsilon_gamma_box,captum:integrated_gradients \
      --out "$OUT/$model/peers"
  fi
done
python "$ROOT/examples/shapes_temperature.py" --models "$MODELS" ${WEIGHTS_DIR:+--weights-dir "$WEIGHTS_DIR"} \
  --n 64 --batch-size 32 --out "$OUT/temperature" --figure "$ROOT/docs/shapes_temperature.png"
python "$ROOT/examples/shapes_figure.py" --model shapes-resnet $(weights shapes-resnet) --out "$ROOT/docs/shapes_grid.png"
for model in ${MODELS//,/ }; do
  spmm bench groundtruth --model "$model" $(weights "$model") --n "$N_FAITH" --batch-size 8 --metrics "$FAITH_METRICS" \
    --preset cpu-small --out "$OUT/$model/faithfulness"
done
