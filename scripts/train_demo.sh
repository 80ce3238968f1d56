#!/usr/bin/env bash
# Demonstrations -> training -> a learned policy in closed loop through ROS 2, end to end:
#   1. scripted ALOHA transfer-cube demonstrations recorded as bags through the simulator bridge
#      (DART-style perturbed ones for training, clean ones on unseen seeds for validation);
#   2. the successful ones turned into training episodes (commanded actions);
#   3. the small preset trained from scratch on them (config/train/small.yaml: image pathway
#      trained end to end, video loss on, state dropout and noise, image augmentation);
#   4. the exported package run through the real nodes by lightwam-sim-eval on the training seeds
#      and on unseen seeds, and lightwam-vision-check on scenes from one start state.
#   scripts/train_demo.sh [OUT]          (default ./train_demo; sets up .venv first)
# Sizes come from the environment: DEMOS (100, as the shipped package), VAL_DEMOS (6),
# PERTURBATION (0.05 rad), STEPS (the config's), EVAL_EPISODES (20), UNSEEN_EPISODES (30),
# VISION_SCENES (10); TRAIN_OVERRIDES adds lightwam-train overrides (space-separated key=value).
# Small values check the plumbing in minutes (DEMOS=2 VAL_DEMOS=1 STEPS=2 EVAL_EPISODES=1
# UNSEEN_EPISODES=1 VISION_SCENES=2); the full run needs hours of CPU training (see the README).
# The shipped package's recipe (video loss off; about 90 minutes on this project's 2 cores):
#   TRAIN_OVERRIDES="objective.video_weight=0 optim.steps=5000 optim.warmup_steps=200
#   run.threads=2" scripts/train_demo.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
OUT="$(mkdir -p "${1:-$ROOT/train_demo}" && cd "${1:-$ROOT/train_demo}" && pwd)"
BIN="${LIGHTWAM_VENV:-$ROOT/.venv}/bin"
DEMOS="${DEMOS:-100}" VAL_DEMOS="${VAL_DEMOS:-6}" PERTURBATION="${PERTURBATION:-0.05}"
EVAL_EPISODES="${EVAL_EPISODES:-20}" UNSEEN_EPISODES="${UNSEEN_EPISODES:-30}"
VISION_SCENES="${VISION_SCENES:-10}"
read -r -a TRAIN_OVERRIDES <<< "${TRAIN_OVERRIDES:-}"
UNSEEN_SEED=2000  # seeds from here on are never demonstrated
cd "$ROOT"

stage_start=$SECONDS
stage() {
    echo "[train-demo] $1 took $((SECONDS - stage_start)) s" | tee -a "$OUT/timing.txt"
    stage_start=$SECONDS
}
successful_bags() {  # the bags of demos.json whose demonstration succeeded, one per line
    "$BIN/python" - "$1" <<'PY'
import json, sys
from pathlib import Path
folder = Path(sys.argv[1])
for demo in json.loads((folder / "demos.json").read_text())["demos"]:
    if demo["success"]:
        print(folder / demo["bag"])
PY
}
rm -f "$OUT/timing.txt"

"$BIN/lightwam-sim-demos" --isolated --episodes "$DEMOS" --first-episode 0 \
    --perturbation "$PERTURBATION" --out "$OUT/demos"
"$BIN/lightwam-sim-demos" --isolated --episodes "$VAL_DEMOS" --first-episode 1000 \
    --out "$OUT/demos_val"
stage "demonstrations ($DEMOS + $VAL_DEMOS)"

for set in demos demos_val; do
    mapfile -t bags < <(successful_bags "$OUT/$set")
    "$BIN/lightwam-bag-to-samples" "${bags[@]}" --out "$OUT/episodes${set#demos}" \
        --embodiment aloha_sim
done
# Instruction embeddings: the stand-in encoder of the tiny packages (umT5 is not reachable here).
"$BIN/lightwam-make-tiny" --embodiment aloha_sim --preset small --out "$OUT/standin"
stage "episodes"

"$BIN/lightwam-train" --config config/train/small.yaml "data.episodes=[$OUT/episodes]" \
    "data.val_episodes=[$OUT/episodes_val]" "data.instructions=$OUT/standin/instructions.safetensors" \
    "run.out_dir=$OUT/run" ${STEPS:+"optim.steps=$STEPS"} run.progress=false "${TRAIN_OVERRIDES[@]}"
stage "training"

MODEL=("--checkpoint" "$OUT/run/export/model.safetensors"
       "--instructions" "$OUT/run/export/instructions.safetensors")
"$BIN/lightwam-sim-eval" --isolated --sim aloha:transfer_cube "${MODEL[@]}" --first-episode 0 \
    --episodes "$EVAL_EPISODES" --out "$OUT/eval_training_seeds"
"$BIN/lightwam-sim-eval" --isolated --sim aloha:transfer_cube "${MODEL[@]}" \
    --first-episode "$UNSEEN_SEED" --episodes "$UNSEEN_EPISODES" --out "$OUT/eval_unseen_seeds"
"$BIN/lightwam-vision-check" "${MODEL[@]}" --scenes "$VISION_SCENES" --first-seed "$UNSEEN_SEED" \
    --out "$OUT/vision"
stage "evaluation"
echo "[train-demo] reports: $OUT/eval_training_seeds/report.md, $OUT/eval_unseen_seeds/report.md," \
     "$OUT/vision/vision_check.json; stage times in $OUT/timing.txt"
