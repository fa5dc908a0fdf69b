#!/usr/bin/env node
// Prints compiler/linker settings for binding.gyp: where OpenBLAS (preferably
// its OpenMP build, which shares one thread pool with our kernels) and oneDNN
// live on this machine. Usage: node scripts/native-config.mjs defines|cflags|libraries
//
// Environment:
//   POLYMOE_OPENBLAS_LIB   full path of libopenblas.so to link (overrides the search)
//   POLYMOE_WITH_ONEDNN=0  build without oneDNN even when it is installed
//   POLYMOE_MARCH          -march value (default: native; the addon is built on the machine it runs on)
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

function multiarch() {
  try {
    return execFileSync("gcc", ["-print-multiarch"], { encoding: "utf8" }).trim();
  } catch {
    return "";
  }
}

const arch = multiarch();
const libDirs = [
  arch && `/usr/lib/${arch}`,
  "/usr/lib64",
  "/usr/lib",
  "/usr/local/lib",
  "/opt/OpenBLAS/lib",
].filter(Boolean);

export function findOpenBLAS() {
  const fromEnv = process.env.POLYMOE_OPENBLAS_LIB;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  const candidates = [];
  for (const dir of libDirs) {
    candidates.push(path.join(dir, "openblas-openmp", "libopenblas.so"));
  }
  for (const dir of libDirs) {
    candidates.push(path.join(dir, "openblas-pthread", "libopenblas.so"));
    candidates.push(path.join(dir, "libopenblas.so"));
  }
  return candidates.find((c) => existsSync(c)) ?? null;
}

export function findOneDNN() {
  if (process.env.POLYMOE_WITH_ONEDNN === "0") return null;
  const header = ["/usr/include/dnnl.h", "/usr/local/include/dnnl.h"].find((h) => existsSync(h));
  if (!header) return null;
  const lib = libDirs.map((d) => path.join(d, "libdnnl.so")).find((l) => existsSync(l));
  return lib ?? null;
}

const what = process.argv[2];
const blas = findOpenBLAS();
const dnnl = findOneDNN();

if (what === "defines") {
  const defs = [];
  if (dnnl) defs.push("POLYMOE_HAVE_DNNL=1");
  console.log(defs.join(" "));
} else if (what === "cflags") {
  console.log(`-march=${process.env.POLYMOE_MARCH ?? "native"}`);
} else if (what === "libraries") {
  if (!blas) {
    console.error(
      "OpenBLAS not found. Install it (Debian/Ubuntu: apt-get install libopenblas-openmp-dev) " +
        "or set POLYMOE_OPENBLAS_LIB to the full path of libopenblas.so.",
    );
    process.exit(1);
  }
  const libs = [blas, `-Wl,-rpath,${path.dirname(blas)}`];
  if (dnnl) libs.push(dnnl, `-Wl,-rpath,${path.dirname(dnnl)}`);
  console.log(libs.join(" "));
} else if (what === "summary") {
  console.log(JSON.stringify({ openblas: blas, onednn: dnnl }));
} else {
  console.error("usage: native-config.mjs defines|cflags|libraries|summary");
  process.exit(2);
}
