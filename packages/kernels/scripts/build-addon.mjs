#!/usr/bin/env node
// Builds the native addon with node-gyp at install time. A failed build never
// fails the install: PolyMoE then runs on the stock tfjs cpu backend and says
// why, once, when it starts. Flags: --force (rebuild even if up to date).
//
// Environment: POLYMOE_SKIP_NATIVE=1 skips the build entirely.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const addon = path.join(pkgDir, "build", "Release", "polymoe_kernels.node");
const force = process.argv.includes("--force");

function newestSource() {
  const files = [path.join(pkgDir, "binding.gyp"), path.join(pkgDir, "scripts", "native-config.mjs")];
  const srcDir = path.join(pkgDir, "native", "src");
  for (const f of readdirSync(srcDir)) files.push(path.join(srcDir, f));
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

function warn(reason) {
  const lines = [
    "PolyMoE: the native kernels (@polymoe/kernels) were not built.",
    `Reason: ${reason}`,
    "PolyMoE still works, on the stock tfjs cpu backend (much slower).",
    "To fix on Debian/Ubuntu: apt-get install -y g++ make python3 libopenblas-openmp-dev libdnnl-dev",
    "then: pnpm --filter @polymoe/kernels build:native",
  ];
  console.warn(`\n${lines.map((l) => `  ${l}`).join("\n")}\n`);
}

if (process.env.POLYMOE_SKIP_NATIVE === "1") {
  console.log("@polymoe/kernels: POLYMOE_SKIP_NATIVE=1, native build skipped");
  process.exit(0);
}
if (!force && existsSync(addon) && statSync(addon).mtimeMs >= newestSource()) {
  console.log("@polymoe/kernels: native addon up to date");
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
// Build against the headers that came with this Node (no download): they sit
// in <prefix>/include/node for distribution packages, nvm and the official tarballs.
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
console.log(`@polymoe/kernels: native addon built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
