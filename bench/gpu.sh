#!/usr/bin/env bash
# Paper-preset throughput on a CUDA machine (ResNet50, 448 px, b = 8 per modality, AMP,
# channels_last) and the projected time of 150 epochs. Usage: bash bench/gpu.sh [OUT.json]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'" 
"$PY" bench/gpu_throughput.py --device cuda --json "${1:-bench/gpu_results.json}"
