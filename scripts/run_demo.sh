#!/usr/bin/env bash
# The README's main-job command: set up (idempotent), then run the closed loop in a real
# simulator - gym-aloha's bimanual ViperX transfer-cube task, stepped by the simulator bridge,
# driven by the Light-WAM policy on a tiny RANDOM-WEIGHT package (untrained: success rate 0) and
# the chunk executor, all on the CPU - for two short episodes, and write the report and an image
# strip per episode into ./sim_eval.  Discovery stays on this machine.  Extra arguments pass
# through to lightwam-sim-eval, e.g. --sim libero, --episodes 5, or --checkpoint M
# --instructions I for a trained package.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "${LIGHTWAM_VENV:-$ROOT/.venv}/bin/lightwam-sim-eval" --isolated --sim aloha \
    --episodes 2 --episode-seconds 6 --out sim_eval "$@"
