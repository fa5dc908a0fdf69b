#!/usr/bin/env bash
# Sets up a PolyMoE checkout on a Debian/Ubuntu machine with Node.js >= 20:
# system packages (when missing), pnpm 10, dependencies, the native addon, and
# every package's build. Idempotent: a second run only checks.
#
#   POLYMOE_SKIP_APT=1   never call apt-get (the native addon may then not build;
#                        PolyMoE falls back to the stock tfjs cpu backend and says why)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- Node.js -----------------------------------------------------------------
if ! command -v node >/dev/null 2>&1; then
  echo "PolyMoE needs Node.js >= 20 (https://nodejs.org or your distribution's nodejs package)." >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "PolyMoE needs Node.js >= 20; this is $(node --version)." >&2
  exit 1
fi

# --- system packages ----------------------------------------------------------
# Compilers for the native addon, OpenBLAS (OpenMP build, sharing one thread
# pool with PolyMoE's kernels) and oneDNN; Open MPI for multi-process training
# (@polymoe/parallel's binding and mpirun).
APT_PACKAGES=(g++ make python3 libopenblas-openmp-dev libdnnl-dev libopenmpi-dev openmpi-bin)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "${POLYMOE_SKIP_APT:-0}" = "1" ]; then
    log "missing system packages (${missing[*]}), POLYMOE_SKIP_APT=1: not installing them"
  elif command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        log "missing system packages (${missing[*]}) and no root/sudo: skipping; the native backend may be unavailable"
        missing=()
      fi
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
      log "installing system packages: ${missing[*]}"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
  else
    log "no apt-get: install a C++ compiler and OpenBLAS yourself for the native backend"
  fi
fi

# --- pnpm 10 -----------------------------------------------------------------
want_pnpm=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null | cut -d. -f1)" != "10" ]; then
  log "installing pnpm $want_pnpm"
  if ! npm install -g "pnpm@$want_pnpm" >/dev/null 2>&1; then
    # No write access to the global prefix: install into the user's own.
    npm install -g --prefix "$HOME/.local" "pnpm@$want_pnpm" >/dev/null
    export PATH="$HOME/.local/bin:$PATH"
    log "pnpm installed to ~/.local/bin (add it to PATH)"
  fi
fi

# --- dependencies, native addon, builds ---------------------------------------
export TURBO_TELEMETRY_DISABLED=1
log "installing dependencies (builds the native addon)"
if [ -n "${CI:-}" ]; then
  pnpm install --frozen-lockfile --reporter=append-only
else
  pnpm install --reporter=silent
fi
log "building packages"
pnpm -s build --output-logs=errors-only
log "done: $(node -p '`${require("./package.json").name}`') is set up"
