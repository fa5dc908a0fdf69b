#!/usr/bin/env bash
# One command from a fresh machine to every test passing (CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.local/bin:$PATH"
export TURBO_TELEMETRY_DISABLED=1
# Two cores: vitest runs at most two files at once, each native call on one
# thread, unless the caller chose otherwise.
export POLYMOE_NUM_THREADS="${POLYMOE_NUM_THREADS:-1}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

echo "== lint and types"
pnpm -s lint
pnpm -s typecheck --output-logs=errors-only
node scripts/check-changesets.mjs

echo "== unit tests (every package)"
pnpm -s test --output-logs=new-only

echo "== MPI tests (real mpirun jobs, one at a time)"
pnpm -s test:mpi

echo "== without the native addon: everything still passes, native suites skipped with the reason"
addon_dir=packages/kernels/build
if [ -d "$addon_dir" ]; then
  mv "$addon_dir" "$addon_dir.off"
  trap 'mv packages/kernels/build.off packages/kernels/build' EXIT
fi
log=$(mktemp)
status=0
pnpm --filter @polymoe/kernels --filter polymoe test --reporter=verbose >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then cat "$log"; exit "$status"; fi
# One line per skipped suite with its stated reason, then the totals.
sed -E 's/\x1b\[[0-9;]*m//g' "$log" | grep -oE "[^>]*\[skipped: [^]]*\]" | sed -E 's/^ *//' | sort | uniq -c
sed -E 's/\x1b\[[0-9;]*m//g' "$log" | grep -E "Test Files|Tests "
echo "all tests passed"
