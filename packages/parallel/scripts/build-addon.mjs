#!/usr/bin/env node
// Builds the MPI binding with node-gyp at install time. A failed build never
// fails the install: @polymoe/parallel then offers its in-process and simulated
// backends, and asking for the MPI backend raises an error saying why and how
// to fix it. Flags: --force (rebuild even if up to date).
//
// Environment: POLYMOE_SKIP_MPI=1 skips the build entirely;
//              POLYMOE_MPICC names the MPI compiler wrapper (default: mpicc).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const addon = path.join(pkgDir, "build", "Release", "polymoe_mpi.node");
const force = process.argv.includes("--force");

function newestSource() {
  const files = [path.join(pkgDir, "binding.gyp"), path.join(pkgDir, "scripts", "mpi-config.mjs")];
  const srcDir = path.join(pkgDir, "native", "src");
  for (const f of readdirSync(srcDir)) files.push(path.join(srcDir, f));
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

function warn(reason) {
  const lines = [
    "PolyMoE: the MPI binding (@polymoe/parallel) was not built.",
    `Reason: ${reason}`,
    "PolyMoE still works on one process (and with simulated ranks); multi-process training needs MPI.",
    "To fix on Debian/Ubuntu: apt-get install -y g++ make python3 libopenmpi-dev openmpi-bin",
    "then: pnpm --filter @polymoe/parallel build:native",
  ];
  console.warn(`\n${lines.map((l) => `  ${l}`).join("\n")}\n`);
}

if (process.env.POLYMOE_SKIP_MPI === "1") {
  console.log("@polymoe/parallel: POLYMOE_SKIP_MPI=1, MPI binding not built");
  process.exit(0);
}
if (!force && existsSync(addon) && statSync(addon).mtimeMs >= newestSource()) {
  console.log("@polymoe/parallel: MPI binding up to date");
  process.exit(0);
}

const probe = spawnSync(process.execPath, [path.join(pkgDir, "scripts", "mpi-config.mjs"), "libraries"], {
  encoding: "utf8",
});
if (probe.status !== 0) {
  warn((probe.stderr || "MPI not found").trim());
  process.exit(0);
}

const require = createRequire(import.meta.url);
let gyp;
try {
  gyp = require.resolve("node-gyp/bin/node-gyp.js");
} catch {
  warn("node-gyp is not installed");
  process.exit(0);
}

const args = [gyp, "rebuild", "--jobs=max"];
// Build against the headers that came with this Node (no download).
const prefix = path.resolve(path.dirname(process.execPath), "..");
const nodedir =
  process.env.npm_config_nodedir ??
  (existsSync(path.join(prefix, "include", "node", "node_api.h")) ? prefix : null);
if (nodedir) args.push(`--nodedir=${nodedir}`);

const started = Date.now();
const res = spawnSync(process.execPath, args, {
  cwd: pkgDir,
  encoding: "utf8",
  stdio: ["ignore", "pipe", "pipe"],
});
if (res.status !== 0) {
  const tail = `${res.stdout ?? ""}\n${res.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n    ");
  warn(`node-gyp exited with ${res.status ?? res.signal}:\n    ${tail}`);
  process.exit(0);
}
console.log(`@polymoe/parallel: MPI binding built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
