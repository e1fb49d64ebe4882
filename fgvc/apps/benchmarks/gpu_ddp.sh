#!/usr/bin/env bash
# DDP scaling on this machine's GPUs, in under 5 minutes: a few training steps of EfficientNet-B4 at 448 px
# on 1 GPU, then on every GPU, and the images per second per GPU with the scaling efficiency.
# Usage: bash fgvc/apps/benchmarks/gpu_ddp.sh [fgvc.apps.benchmarks.ddp flags, e.g. --arch efficientnet-b0 --img-size 224]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
GPUS=$(nvidia-smi -L | wc -l)
[ "$GPUS" -ge 1 ] || { echo "no GPU found (nvidia-smi -L lists none)" >&2; exit 1; }
run() { "$PY" -m torch.distributed.run --standalone --nproc_per_node="$1" -m fgvc.apps.benchmarks.ddp "${@:2}" | tail -n 1; }
one=$(run 1 "$@")
all=$(run "$GPUS" "$@")
echo "$one"
echo "$all"
"$PY" -m fgvc.apps.benchmarks.ddp --report "$one" "$all"
