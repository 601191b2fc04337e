#!/usr/bin/env bash
# The honk res8 tables of benchmarks/audio/RESULTS.md with the unified bench: TF-patch faithfulness on
# Speech Commands clips and Focus on audio mosaics.
# Usage: benchmarks/audio/run_audio_table.sh OUT_DIR N_CLIPS N_MOSAICS   (the old tables: 300 clips, 100 mosaics)
# Settings of the old benchmark_audio.py run: SmoothGrad/SmoothPullback 20 samples, IG 20 steps,
# max-sensitivity 5 draws, Infidelity 3 draws (the bench defaults: 50, 50, 10, 5); TF patches of
# 10 frames × 8 mel bands.  Clips: the first N of torch.randperm(seed 0) over the 300 files.
# Resumable: rerun with the same OUT_DIR.
set -euo pipefail
OUT=${1:-/tmp/spmm-audio-bench}
N=${2:-300}
MOSAICS=${3:-100}
DATA=${SPMM_SHARED_DATA:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data}/audio
EXPLAINERS=soft_pullback,pullback_ascent,smooth_pullback,gradient,smoothgrad,integrated_gradients
PARAMS='{"smoothgrad": {"samples": 20}, "smooth_pullback": {"samples": 20}, "integrated_gradients": {"steps": 20}}'
METRICS='{"max_sensitivity": {"samples": 5}, "infidelity": {"draws": 3}}'
MODEL=(--model honk-res8 --weights "$DATA/models/honk_res8.pt")
export OMP_NUM_THREADS=1
spmm bench faithfulness "${MODEL[@]}" --data "$DATA/speech_commands" --n "$N" --explainers "$EXPLAINERS" \
  --explainer-params "$PARAMS" --metric-params "$METRICS" --out "$OUT/faithfulness" &
spmm bench focus "${MODEL[@]}" --data "$DATA/speech_commands" --n "$MOSAICS" --explainers "$EXPLAINERS" \
  --explainer-params "$PARAMS" --out "$OUT/focus" &
wait
