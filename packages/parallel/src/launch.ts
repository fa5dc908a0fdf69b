// The launcher: runs N ranks of a command under mpirun, sets each rank's
// thread budget, and turns a failed rank into one clear line and a non-zero
// exit. It never initialises MPI itself; the ranks do (see rank_process.ts).
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism, constants } from "node:os";

import { ParallelError } from "./errors.js";

export interface LaunchOptions {
  /** Number of ranks (mpirun -np). */
  ranks: number;
  /** An Open MPI hostfile ("host slots=N" per line); default: every rank on this host. */
  hostfile?: string;
  /** argv of every rank's process. */
  command: readonly string[];
  /** Let ranks > 0 print to stdout too (default: only rank 0 does). */
  logAllRanks?: boolean;
  /** Allow more ranks than slots on a host from a hostfile (on this host it is automatic). */
  oversubscribe?: boolean;
  /** The mpirun executable. Default: POLYMOE_MPIRUN, else "mpirun". */
  mpirun?: string;
  /** Extra arguments for mpirun, placed before the command. */
  mpirunArgs?: readonly string[];
  /** Environment of the launcher (default process.env); the ranks inherit it. */
  env?: NodeJS.ProcessEnv;
  /** Cores of this host (default: os.availableParallelism()). */
  cores?: number;
  /** Running as root (default: process.getuid() === 0): mpirun then needs --allow-run-as-root. */
  root?: boolean;
  /**
   * Whether the launcher's stdout is a terminal (default: process.stdout.isTTY).
   * mpirun gives every rank a pseudo-terminal as stdout even when its own
   * output goes to a file, so the ranks learn it from POLYMOE_STDOUT_TTY.
   */
  stdoutIsTTY?: boolean;
}

export interface LaunchPlan {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Most ranks any host runs. */
  ranksPerHost: number;
  /** POLYMOE_NUM_THREADS given to each rank. */
  threadsPerRank: number;
  /** What the launcher decided and why, one line each. */
  notes: string[];
}

interface Host {
  name: string;
  slots: number;
}

/** Parses an Open MPI hostfile: "name [slots=N] [max_slots=M]" per line, # comments. */
export function parseHostfile(text: string, file = "hostfile"): Host[] {
  const hosts: Host[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) return;
    const [name, ...rest] = line.split(/\s+/);
    let slots = 1;
    for (const kv of rest) {
      const m = /^slots=(\d+)$/.exec(kv);
      if (m) slots = Number(m[1]);
      else if (!/^max[-_]slots=\d+$/.test(kv)) {
        throw new ParallelError(
          "LAUNCH_FAILED",
          `${file}:${i + 1}: cannot read '${kv}' (expected 'slots=N' or 'max_slots=N' after the host name)`,
        );
      }
    }
    if (slots < 1) throw new ParallelError("LAUNCH_FAILED", `${file}:${i + 1}: slots must be >= 1`);
    hosts.push({ name: name!, slots });
  });
  if (hosts.length === 0) throw new ParallelError("LAUNCH_FAILED", `${file}: no hosts listed`);
  return hosts;
}

/** Builds the mpirun command line and environment. Pure apart from reading the hostfile. */
export function planLaunch(options: LaunchOptions): LaunchPlan {
  const { ranks } = options;
  if (!Number.isInteger(ranks) || ranks < 1) {
    throw new ParallelError("LAUNCH_FAILED", `-n must be an integer >= 1, got ${String(ranks)}`);
  }
  if (options.command.length === 0) throw new ParallelError("LAUNCH_FAILED", "no command to launch");
  const env = { ...(options.env ?? process.env) };
  const cores = options.cores ?? availableParallelism();
  const root = options.root ?? process.getuid?.() === 0;
  const notes: string[] = [];
  const args: string[] = [];

  let ranksPerHost = ranks;
  if (options.hostfile !== undefined) {
    if (!existsSync(options.hostfile)) {
      throw new ParallelError("LAUNCH_FAILED", `--hostfile ${options.hostfile}: no such file`);
    }
    const hosts = parseHostfile(readFileSync(options.hostfile, "utf8"), options.hostfile);
    const slots = hosts.reduce((a, h) => a + h.slots, 0);
    if (slots < ranks && !options.oversubscribe) {
      throw new ParallelError(
        "LAUNCH_FAILED",
        `--hostfile ${options.hostfile} has ${slots} slots for ${ranks} ranks: add hosts or slots, or pass --oversubscribe`,
      );
    }
    // mpirun fills hosts slot by slot, in file order (and round-robin past the slots when oversubscribed).
    const placed = hosts.map(() => 0);
    for (let r = 0, h = 0; r < ranks; r++) {
      if (r < slots) {
        while (placed[h]! >= hosts[h]!.slots) h++;
        placed[h]!++;
      } else placed[r % hosts.length]!++;
    }
    ranksPerHost = Math.max(...placed);
    args.push("--hostfile", options.hostfile);
    if (options.oversubscribe) args.push("--oversubscribe");
    notes.push(`hosts: ${hosts.map((h, i) => `${h.name} (${placed[i]} ranks)`).join(", ")}`);
  } else if (ranks > cores || options.oversubscribe) {
    args.push("--oversubscribe");
    notes.push(`${ranks} ranks on ${cores} cores: --oversubscribe`);
  }
  if (root) {
    args.push("--allow-run-as-root");
    notes.push("running as root: --allow-run-as-root");
  }

  let threadsPerRank: number;
  const userThreads = env.POLYMOE_NUM_THREADS;
  if (userThreads !== undefined && userThreads !== "") {
    threadsPerRank = Number(userThreads);
    notes.push(`threads per rank: ${userThreads} (POLYMOE_NUM_THREADS from the environment)`);
  } else {
    threadsPerRank = Math.max(1, Math.floor(cores / ranksPerHost));
    notes.push(`threads per rank: ${threadsPerRank} = ${cores} cores / ${ranksPerHost} ranks per host`);
  }
  // Process binding. On this host, not oversubscribed: each rank gets its own
  // threadsPerRank cores (slot:PE=t, bind to core) — unbound ranks migrate and
  // MPI's shared-memory transfers slow down several-fold. Oversubscribed ranks
  // cannot own cores: no binding. With a hostfile Open MPI's defaults apply.
  if (options.hostfile === undefined) {
    if (args.includes("--oversubscribe") || ranks * threadsPerRank > cores) args.push("--bind-to", "none");
    else {
      args.push("--map-by", `slot:PE=${threadsPerRank}`, "--bind-to", "core");
      notes.push(`binding: each rank to its own ${threadsPerRank} core${threadsPerRank > 1 ? "s" : ""}`);
    }
  }
  env.POLYMOE_NUM_THREADS = String(threadsPerRank);
  env.OMP_NUM_THREADS = String(threadsPerRank);
  env.OPENBLAS_NUM_THREADS = String(threadsPerRank);
  env.POLYMOE_LAUNCHED = "1";
  env.POLYMOE_STDOUT_TTY = (options.stdoutIsTTY ?? Boolean(process.stdout.isTTY)) ? "1" : "0";
  if (options.logAllRanks) env.POLYMOE_LOG_ALL_RANKS = "1";
  else delete env.POLYMOE_LOG_ALL_RANKS;

  // Export to every rank (remote hosts included) what PolyMoE and Open MPI read.
  const exported = Object.keys(env)
    .filter(
      (k) =>
        k.startsWith("POLYMOE_") ||
        k.startsWith("OMPI_MCA_") ||
        k === "OMP_NUM_THREADS" ||
        k === "OPENBLAS_NUM_THREADS" ||
        k === "NODE_OPTIONS",
    )
    .sort();
  for (const k of exported) args.push("-x", k);

  args.push("-np", String(ranks), ...(options.mpirunArgs ?? []), ...options.command);
  return {
    file: options.mpirun ?? env.POLYMOE_MPIRUN ?? "mpirun",
    args,
    env,
    ranksPerHost,
    threadsPerRank,
    notes,
  };
}

/** A rank failure as mpirun reports it. */
export interface RankFailure {
  rank: number;
  detail: string;
}

/** Reads mpirun's failure reports (Open MPI 4/5 wording) out of its output. */
export function parseRankFailure(output: string): RankFailure | null {
  const signal = /process rank (\d+) with PID (\d+) on node (\S+) exited on signal (\d+) \(([^)]+)\)/.exec(
    output,
  );
  if (signal) {
    // Open MPI 4 may print PID 0 for a process it lost; say only what is known.
    const pid = signal[2] === "0" ? "" : `pid ${signal[2]} `;
    return {
      rank: Number(signal[1]),
      detail: `${pid}on ${signal[3]} was killed by signal ${signal[4]} (${signal[5]})`,
    };
  }
  const abort = /MPI_ABORT was invoked on rank (\d+) in communicator (\S+)\s+with errorcode (\d+)/.exec(
    output,
  );
  if (abort) return { rank: Number(abort[1]), detail: `called MPI_Abort with error code ${abort[3]}` };
  const exit = /Process name:\s+\[\[\d+,\d+\],(\d+)\]\s+Exit code:\s+(\d+)/.exec(output);
  if (exit) return { rank: Number(exit[1]), detail: `exited with code ${exit[2]}` };
  const noFinalize = /Process name:\s+\[\[\d+,\d+\],(\d+)\][\s\S]*?exited without calling "?finalize/i.exec(
    output,
  );
  if (noFinalize) return { rank: Number(noFinalize[1]), detail: "exited without finalizing MPI" };
  return null;
}

export interface LaunchIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

/**
 * Runs the plan; resolves to the exit code. When mpirun reports a failed rank
 * (killed, aborted, non-zero exit) the launcher prints one line naming it;
 * if mpirun has not ended `failureGraceMs` after that report (default 20 s),
 * the launcher stops the whole job itself, so a dead rank never leaves the job
 * hanging. The first SIGINT/SIGTERM asks every rank to stop (as SIGUSR2, which
 * mpirun forwards; a trainer finishes its step, saves and exits 0); a second
 * one stops the job at once.
 */
export async function launch(
  options: LaunchOptions & { failureGraceMs?: number },
  io: LaunchIo = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) },
): Promise<number> {
  const plan = planLaunch(options);
  const grace = options.failureGraceMs ?? 20_000;
  return new Promise<number>((resolve) => {
    const child = spawn(plan.file, plan.args, {
      env: plan.env,
      // Own process group (so the whole job can be signalled) and no stdin: a
      // background process group reading the terminal would be stopped.
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let tail = "";
    let failure: RankFailure | null = null;
    let killer: NodeJS.Timeout | undefined;
    let forced = false;
    const watch = (chunk: string) => {
      tail = (tail + chunk).slice(-16_384);
      if (failure) return;
      failure = parseRankFailure(tail);
      if (failure) {
        killer = setTimeout(() => {
          forced = true;
          io.stderr(
            `polymoe launch: mpirun still running ${grace / 1000} s after rank ${failure!.rank} failed; stopping the job\n`,
          );
          try {
            process.kill(-child.pid!, "SIGTERM");
          } catch {}
          setTimeout(() => {
            try {
              process.kill(-child.pid!, "SIGKILL");
            } catch {}
          }, 3000).unref();
        }, grace);
      }
    };
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      io.stdout(s);
      watch(s);
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      io.stderr(s);
      watch(s);
    });
    // The first Ctrl-C / SIGTERM becomes SIGUSR2, which mpirun passes to every rank
    // (SIGINT/SIGTERM would make mpirun SIGKILL the ranks 1 s after a SIGTERM, before a
    // trainer could finish its step and save); initRankProcess() turns it into SIGTERM.
    // A second one is passed on as is: mpirun then stops the job.
    let interrupted = false;
    const forward = (sig: NodeJS.Signals) => {
      if (!interrupted) {
        interrupted = true;
        io.stderr(`polymoe launch: ${sig}: asking every rank to stop (${sig} again to abort)\n`);
        try {
          process.kill(child.pid!, "SIGUSR2");
        } catch {}
        return;
      }
      try {
        process.kill(-child.pid!, sig);
      } catch {}
    };
    const onInt = () => forward("SIGINT");
    const onTerm = () => forward("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    child.on("error", (e) => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      const hint =
        (e as NodeJS.ErrnoException).code === "ENOENT"
          ? " (install Open MPI: apt-get install -y openmpi-bin libopenmpi-dev, or set POLYMOE_MPIRUN)"
          : "";
      io.stderr(`polymoe launch: cannot start ${plan.file}: ${e.message}${hint}\n`);
      resolve(127);
    });
    child.on("close", (code, signal) => {
      clearTimeout(killer);
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      const status = code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1);
      const failed = failure ?? (status !== 0 ? parseRankFailure(tail) : null);
      if (failed) {
        io.stderr(
          `polymoe launch: rank ${failed.rank} failed (${failed.detail}); ` +
            `${forced ? "the launcher stopped" : "mpirun stopped"} the other ranks\n`,
        );
      } else if (status !== 0) {
        io.stderr(`polymoe launch: mpirun exited with ${code ?? signal}\n`);
      }
      resolve(failed && status === 0 ? 1 : status);
    });
  });
}
