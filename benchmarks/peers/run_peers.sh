#!/usr/bin/env bash
# The "Peers" tables of benchmarks/RESULTS.md: SP next to LXT (AttnLRP, CP-LRP), inseq, Captum and zennit
# on the same models, data and metric code, one run per table.  Needs the extra: pip install -e '.[peers]'.
# Usage: benchmarks/peers/run_peers.sh OUT_DIR N_ITEMS [part...]   parts: text pointing decoder vision speed
# (default: all).  Resumable: rerun with the same OUT_DIR (the bench resumes by settings hash; a longer
# --explainers list reuses the checkpoints of the explainers already computed).
set -euo pipefail
OUT=${1:-/tmp/spmm-peers}
N=${2:-300}
shift 2 || true
PARTS=${*:-text pointing decoder vision speed}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${SPMM_SHARED_DATA:-$(cd "$HERE/../../.." && pwd)/shared/data}
TEXT_EXPLAINERS=${TEXT_EXPLAINERS:-soft_pullback,lxt:attnlrp,lxt:cp_lrp,captum:integrated_gradients}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
for part in $PARTS; do case $part in
text)  # MiniLM SST-2 head and AG News zero-shot; text metrics with the bench defaults (max-sensitivity 3 draws)
  spmm bench faithfulness --model minilm-sst2 --data "$DATA/text/sst2/stsa.binary.test" --n "$N" \
    --explainers "$TEXT_EXPLAINERS" --out "$OUT/sst2" > "$OUT/sst2.log" 2>&1 &
  spmm bench faithfulness --model minilm-agnews --data "$DATA/text/ag_news/test.csv" --n "$N" \
    --explainers "$TEXT_EXPLAINERS" --out "$OUT/agnews" > "$OUT/agnews.log" 2>&1 &
  wait ;;
pointing)  # the sequence pointing game on SST-2 pairs
  spmm bench focus --model minilm-sst2 --data "$DATA/text/sst2/stsa.binary.test" --n "${PAIRS:-200}" \
    --explainers "$TEXT_EXPLAINERS" --out "$OUT/sst2_pointing" > "$OUT/sst2_pointing.log" 2>&1 ;;
decoder)  # token deletion on the trained tiny-lm (SP, IG, LXT; signed and norm forms)
  python "$HERE/decoder_deletion.py" --n "${DECODER_N:-150}" --lxt --out "$OUT/decoder_tiny_lm" > "$OUT/decoder.log" 2>&1 ;;
vision)  # EfficientNet-Lite0 on the 64-image sample: zennit's LRP composites next to SP (CPU-sized metric draws)
  spmm bench faithfulness --model efficientnet-lite0 --data "$DATA/imagenet-sample" --n "${VISION_N:-64}" --batch-size 4 \
    --explainers soft_pullback,zennit:epsilon_plus_flat,zennit:epsilon_gamma_box --preset cpu-small \
    --out "$OUT/vision" > "$OUT/vision.log" 2>&1 ;;
speed)  # time and peak memory per attributed token / image, interleaved repeats, one process per measurement
  python "$HERE/speed.py" --out "$OUT/speed" > "$OUT/speed.log" 2>&1 ;;
esac; done
