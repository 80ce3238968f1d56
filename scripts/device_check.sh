#!/usr/bin/env bash
# The device check: one call that measures what only an accelerator can show, and writes one
# JSON + markdown table. On a CUDA machine (full wan2.1-1.3b preset, bf16; fits in 8 minutes on
# an H200): bf16-vs-fp32 parity, latency and peak memory of the optimised vs the eager reference
# path for both embodiments, then with torch.compile, then with CUDA graphs, and the trainer's
# training step. On a CPU (tiny preset; this is what CI runs) the same steps, with compile and
# CUDA graphs skipped and said so.
#   scripts/device_check.sh [OUT_DIR]        (default ./reports/device_check)
# Exit status: 0 when every step that ran passed, 1 otherwise (the table says which).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(mkdir -p "${1:-$ROOT/reports/device_check}" && cd "${1:-$ROOT/reports/device_check}" && pwd)"
PY="${LIGHTWAM_VENV:-$ROOT/.venv}/bin/python"
cd "$ROOT"
rm -f "$OUT"/step_*.json "$OUT"/step_*.log "$OUT/steps.tsv"

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    KIND=cuda; ITERS=30; STEP_LIMIT=170
    TRAIN=(--presets wan2.1-1.3b --trainable lora --batch-size 16 --embodiment libero_franka
           --steps 5 --warmup 2)
else
    KIND=cpu; ITERS=3; STEP_LIMIT=300
    TRAIN=(--presets tiny --batch-size 2 --embodiment aloha_sim --steps 2 --warmup 1)
fi
echo "[device-check] $KIND: report in $OUT"

# step NAME SKIP_REASON -- COMMAND...: runs COMMAND (which writes $OUT/step_NAME.json), bounded
# by STEP_LIMIT seconds, and records name, exit status, seconds and the skip reason if any.
step() {
    local name="$1" skip="$2"; shift 3
    if [[ -n "$skip" ]]; then
        printf '%s\tskipped\t0\t%s\n' "$name" "$skip" >> "$OUT/steps.tsv"
        echo "[device-check] $name: skipped ($skip)"
        return
    fi
    local start=$SECONDS rc
    timeout "$STEP_LIMIT" "$@" > "$OUT/step_$name.log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\t\n' "$name" "$rc" "$((SECONDS - start))" >> "$OUT/steps.tsv"
    echo "[device-check] $name: exit $rc in $((SECONDS - start)) s"
}

no_cuda=""; [[ $KIND == cpu ]] && no_cuda="needs a CUDA device"
no_compile="$no_cuda"
bench=("$PY" -m lightwam_ros.tools.bench.bench --iters "$ITERS" --warmup 3)
step parity "" -- "$PY" -m lightwam_ros.tools.bench.bench --parity --json "$OUT/step_parity.json"
step latency "" -- "${bench[@]}" --json "$OUT/step_latency.json"
step compile "$no_compile" -- "${bench[@]}" --compile default --json "$OUT/step_compile.json"
step cuda_graphs "$no_cuda" -- "${bench[@]}" --cuda-graphs --json "$OUT/step_cuda_graphs.json"
step train "" -- "$PY" -m lightwam_ros.train.bench "${TRAIN[@]}" --json "$OUT/step_train.json"
"$PY" -m lightwam_ros.tools.bench.device_report "$OUT"
