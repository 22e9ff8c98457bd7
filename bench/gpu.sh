#!/usr/bin/env bash
# The GPU check of the paper preset, in one go (at most about 8 minutes on one GPU), JSON out:
#  1. bench/gpu_throughput.py: train steps/s of DCINet and of the plain shared network (AMP +
#     channels_last, 448 px, b = 8 per modality, BiT ResNetV2-50x1), the CCRN encoding time of
#     PKU FG-XMedia's 15.8k test items, loading the preset's timm weights from a local file, and
#     the projected time of 150 epochs;
#  2. bench/gpu_check.py: the real command line on a synthetic dataset: train, kill -9, --resume,
#     evaluate --device cuda (its time projected to 15.8k items);
#  3. the tests marked gpu.
# Usage: bash bench/gpu.sh [OUT.json]   (default bench/gpu_results.json, read by bench/run_all.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-bench/gpu_results.json}
TMP=$(mktemp -d)
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 200 "$PY" bench/gpu_throughput.py --device cuda --steps 20 --warmup 5 --json "$TMP/throughput.json"
timeout 300 "$PY" bench/gpu_check.py --device cuda --json "$TMP/check.json"
timeout 60 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests | tail -3 || true
"$PY" - "$TMP/throughput.json" "$TMP/check.json" "$OUT" <<'PYEOF'
import json, sys
throughput, check, out = sys.argv[1:]
merged = {**json.load(open(throughput)), "cli": json.load(open(check))}
json.dump(merged, open(out, "w"), indent=1)
print(f"wrote {out}")
PYEOF
