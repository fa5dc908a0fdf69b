#!/usr/bin/env node
// Prints compiler/linker settings of the MPI installation for binding.gyp, from
// the MPI compiler wrapper (`mpicc --showme:*` for Open MPI, `mpicc -show` for
// MPICH), else pkg-config. Usage: node scripts/mpi-config.mjs include_dirs|libraries|summary
//
// Environment: POLYMOE_MPICC   the MPI C compiler wrapper to ask (default: mpicc)
import { execFileSync } from "node:child_process";

const mpicc = process.env.POLYMOE_MPICC ?? "mpicc";

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

function split(flags) {
  return flags.split(/\s+/).filter(Boolean);
}

export function mpiFlags() {
  const compile = run(mpicc, ["--showme:compile"]);
  const link = run(mpicc, ["--showme:link"]);
  if (compile !== null && link !== null)
    return { via: `${mpicc} --showme`, compile: split(compile), link: split(link) };
  const show = run(mpicc, ["-show"]); // MPICH
  if (show !== null) {
    const parts = split(show).slice(1);
    return {
      via: `${mpicc} -show`,
      compile: parts.filter((p) => p.startsWith("-I")),
      link: parts.filter((p) => p.startsWith("-L") || p.startsWith("-l") || p.startsWith("-Wl")),
    };
  }
  const pc =
    run("pkg-config", ["--cflags", "--libs", "ompi-c"]) ?? run("pkg-config", ["--cflags", "--libs", "mpi"]);
  if (pc !== null) {
    const parts = split(pc);
    return {
      via: "pkg-config",
      compile: parts.filter((p) => p.startsWith("-I")),
      link: parts.filter((p) => !p.startsWith("-I")),
    };
  }
  return null;
}

const flags = mpiFlags();
const what = process.argv[2];
if (what === "summary") {
  console.log(JSON.stringify(flags));
  process.exit(0);
}
if (!flags) {
  console.error(
    "MPI not found: no mpicc and no pkg-config entry for ompi-c/mpi. " +
      "Install Open MPI (Debian/Ubuntu: apt-get install libopenmpi-dev openmpi-bin).",
  );
  process.exit(1);
}
if (what === "include_dirs") {
  console.log(
    flags.compile
      .filter((f) => f.startsWith("-I"))
      .map((f) => f.slice(2))
      .join(" "),
  );
} else if (what === "libraries") {
  // Keep the library directory on the runtime path so the addon finds libmpi
  // without LD_LIBRARY_PATH.
  const rpaths = flags.link.filter((f) => f.startsWith("-L")).map((f) => `-Wl,-rpath,${f.slice(2)}`);
  console.log([...flags.link, ...rpaths].join(" "));
} else {
  console.error("usage: mpi-config.mjs include_dirs|libraries|summary");
  process.exit(2);
}
