#!/usr/bin/env bash
# One command from a fresh machine to PolyMoE's main job on its embedded default:
# prepare the quick corpus (4 languages + English, real translations from Debian's
# gettext catalogs and the UDHR), train the quick TaskMoE model on it, and evaluate
# it on the held-out test split. Extra arguments go to `polymoe train`
# (e.g. --train.maxSteps 100). Safe to run again: training resumes from its last
# checkpoint (--fresh starts over).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.local/bin:$PATH"
pnpm -s polymoe info
pnpm -s polymoe train --config quick "$@"
pnpm -s polymoe eval --checkpoint runs/quick --split test --max-sentences 100 --out runs/quick/eval-test
echo
echo "Training curves: runs/quick/plots/ · evaluation report: runs/quick/eval-test/report.md"
