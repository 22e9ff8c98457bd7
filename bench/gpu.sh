#!/usr/bin/env bash
# The GPU check of the paper preset, in one go, within BUDGET_S seconds on one GPU (run it as
# `timeout 480 bash bench/gpu.sh`: the steps' limits, each with its 5 s grace to be killed, and
# the summary add up to at most that):
#  env         nvidia-smi and torch's view of the GPU;
#  throughput  bench/gpu_throughput.py: model-only steps/s of DCINet (bf16, fp16, compiled) and of
#              the plain shared network, the real train_one_epoch with data loading, the CCRN
#              encoding time of PKU FG-XMedia's 15.8k test items, the projected 150 epochs;
#  cli         bench/gpu_check.py: the real command line on a synthetic dataset: train, kill -9,
#              --resume, evaluate --device cuda (its time projected to 15.8k items);
#  tests       the tests marked gpu (tests/train/test_gpu.py, tests/test_distributed.py), each
#              one's outcome recorded from pytest's JUnit XML.
# There is no `set -e` and nothing is piped or swallowed: every step runs whatever the others did,
# under its own `timeout`; its output goes to OUT-logs/STEP.log (and to the terminal afterwards),
# its exit code to OUT-logs/STEP.rc, and the figures each script has measured so far to its JSON.
# bench/gpu_summary.py then merges everything into OUT (JSON, read by bench/run_all.py and
# bench/bench_decode.py) and OUT with .md (a table of the targets and of every exit code and
# test), and this script exits 1 if any step or test failed.
# Usage: bash bench/gpu.sh [OUT.json]   (default bench/gpu_results.json)
set -u
cd "$(dirname "$0")/.." || exit 2
PY=${PY:-.venv/bin/python}
OUT=${1:-bench/gpu_results.json}
LOGS=${OUT%.json}-logs
BUDGET_S=480
STARTED=$(date +%s)
rm -rf "$LOGS" && mkdir -p "$LOGS" || exit 2

step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most ${limit} s): $*"
  timeout --kill-after=5 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  echo "$rc" >"$LOGS/$name.rc"
  cat "$LOGS/$name.log"
  echo "== $name: exit $rc"
}

step env 10 bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$0" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available()); assert torch.cuda.is_available(), \"no CUDA GPU visible\""' "$PY"
step throughput 170 "$PY" bench/gpu_throughput.py --device cuda --steps 20 --warmup 5 \
  --json "$LOGS/throughput.json"
step cli 125 "$PY" bench/gpu_check.py --device cuda --json "$LOGS/cli.json"
step tests 145 "$PY" -m pytest -q -p no:cacheprovider -m gpu --junitxml="$LOGS/tests.xml" tests
"$PY" bench/gpu_summary.py "$LOGS" "$OUT" --started "$STARTED" --budget "$BUDGET_S"
