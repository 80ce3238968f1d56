#!/usr/bin/env bash
# The README's main-job command: set up (idempotent), then run the closed loop in a real
# simulator - gym-aloha's bimanual ViperX transfer-cube task, stepped by the simulator bridge,
# driven by the Light-WAM policy on the learned small package this repository ships
# (packages/aloha_sim: trained here from scratch on 93 scripted demonstrations, see its README)
# and the chunk executor, all on the CPU - for two episodes on training seeds, and write the
# report (success rate, how close the right gripper came to the cube, latency, smoothness) and
# an image strip per episode into ./sim_eval.  Discovery stays on this machine.  Extra
# arguments pass through to lightwam-sim-eval, e.g. --episodes 20, --first-episode 2000 (seeds
# never demonstrated), --tiny (the random-weight plumbing package), --sim libero --tiny.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
PACKAGE="$ROOT/packages/aloha_sim"
MODEL=(--checkpoint "$PACKAGE/model.safetensors" --instructions "$PACKAGE/instructions.safetensors")
for arg in "$@"; do  # another model named on the command line replaces the shipped one
    case "$arg" in --tiny | --checkpoint | --checkpoint=*) MODEL=() ;; esac
done
exec "${LIGHTWAM_VENV:-$ROOT/.venv}/bin/lightwam-sim-eval" --isolated --sim aloha:transfer_cube \
    "${MODEL[@]}" --episodes 2 --first-episode 0 --episode-seconds 12 --out sim_eval "$@"
