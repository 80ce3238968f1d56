#!/usr/bin/env bash
# The README's main-job command: set up (idempotent), then bring the whole closed loop up - the
# Light-WAM policy on a tiny random-weight package, the chunk executor and the loopback robot -
# for 20 s from its first chunk, and print what flowed (chunks, commands, the robot's
# motion).  Discovery stays on this machine.  Extra arguments pass through to lightwam-bringup,
# e.g. --embodiment libero_franka, --processes one or --duration 60.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "${LIGHTWAM_VENV:-$ROOT/.venv}/bin/lightwam-bringup" --isolated --tiny --loopback-robot \
    --duration 20 "$@"
