#!/usr/bin/env bash
# One command from a fresh machine to PolyMoE's main job on its embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.local/bin:$PATH"
pnpm -s polymoe info
pnpm -s polymoe smoke "$@"
