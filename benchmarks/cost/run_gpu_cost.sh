#!/usr/bin/env bash
# Issue 16's GPU columns: SoftPullback vs the plain gradient, eager and torch.compile'd (inductor),
# batch 8, random-initialised models, on one CUDA GPU (examples/bench_cost.py).
# Usage: benchmarks/cost/run_gpu_cost.sh OUT_DIR [SECONDS]
#   writes OUT_DIR/versions.txt, eager.md (time and memory, all five models), compiled.md (time and
#   compiled-vs-eager error, one model after another while SECONDS last; default 480), logs.
set -uo pipefail
OUT=${1:?OUT_DIR}
BUDGET=${2:-480}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -c "import torch, torchvision, timm, transformers, spmm; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())" | tee "$OUT/versions.txt"
echo "== eager, all models"
timeout 200 python3 examples/bench_cost.py --device cuda --batch 8 --repeats 20 > "$OUT/eager.md" 2> "$OUT/logs.txt"
echo "eager rc=$?"; cat "$OUT/eager.md"
for model in resnet50 vit_small_patch16_224 "bert-base (random)" "llama decoder (random)" vgg11_bn; do
  left=$(( BUDGET - SECONDS - 10 ))
  if [ "$left" -lt 60 ]; then echo "== no time left for $model"; break; fi
  echo "== compiled $model (${left}s left)"
  timeout "$left" python3 examples/bench_cost.py --device cuda --batch 8 --repeats 20 --compile --time-only \
    --models "$model" >> "$OUT/compiled.md" 2>> "$OUT/logs.txt"
  echo "rc=$?"
done
cat "$OUT/compiled.md"
