#!/usr/bin/env bash
# Speed on one GPU, in under 5 minutes: EfficientNet-B4 training at 448 px with the defaults (autocast,
# channels_last, cudnn.benchmark, TF32; and torch.compile) against fp32 NCHW, then the training input
# pipeline with every core. Tables go to stdout and to ${OUT:-logs}/bench-gpu.md.
#   bash fgvc/apps/benchmarks/gpu.sh            (from the repository root, after `make setup`)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
out=${OUT:-logs}/bench-gpu.md
mkdir -p "$(dirname "$out")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$out"
timeout 200 "$PY" -m fgvc bench train --device cuda --arch efficientnet-b4 --img-size 448 --batch-size 32 \
    --repeats 5 --out "$out"
timeout 90 "$PY" -m fgvc bench data --device cuda --img-size 448 --batch-size 32 --repeats 3 --out "$out"
