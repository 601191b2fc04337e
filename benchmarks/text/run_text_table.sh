#!/usr/bin/env bash
# The text tables of benchmarks/text/RESULTS.md with the unified bench (SST-2 head and AG News zero-shot
# on MiniLM; the sequence pointing game on SST-2 pairs).
# Usage: benchmarks/text/run_text_table.sh OUT_DIR N_ITEMS N_PAIRS   (the old tables: 300 items, 200 pairs)
# Settings of the old run_text_benchmark.py runs: SmoothGrad/SmoothPullback 10 samples with noise 0.02,
# IG/IntegratedPullbacks 16 steps, one max-sensitivity draw (the bench default is 3).  Items: the seeded
# sample random.Random(0) of the test set; pairs: random.Random(1).  Resumable: rerun with the same OUT_DIR.
set -euo pipefail
OUT=${1:-/tmp/spmm-text-bench}
N=${2:-300}
PAIRS=${3:-200}
DATA=${SPMM_SHARED_DATA:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data}/text
EXPLAINERS=soft_pullback,smooth_pullback,integrated_pullbacks,gradient,smoothgrad,integrated_gradients
PARAMS='{"smoothgrad": {"samples": 10, "noise": 0.02}, "smooth_pullback": {"samples": 10, "noise": 0.02},
         "integrated_gradients": {"steps": 16}, "integrated_pullbacks": {"steps": 16}}'
METRICS='{"max_sensitivity": {"samples": 1}}'
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
spmm bench faithfulness --model minilm-sst2 --data "$DATA/sst2/stsa.binary.test" --n "$N" --explainers "$EXPLAINERS" \
  --explainer-params "$PARAMS" --metric-params "$METRICS" --out "$OUT/sst2" &
spmm bench faithfulness --model minilm-agnews --data "$DATA/ag_news/test.csv" --n "$N" --explainers "$EXPLAINERS" \
  --explainer-params "$PARAMS" --metric-params "$METRICS" --out "$OUT/agnews" &
wait
spmm bench focus --model minilm-sst2 --data "$DATA/sst2/stsa.binary.test" --n "$PAIRS" --explainers "$EXPLAINERS" \
  --explainer-params "$PARAMS" --out "$OUT/sst2_pointing"
