// The rank side of `polymoe launch`: a process started by mpirun learns its
// rank and world size from MPI, and only rank 0 keeps stdout.
import type { Communicator } from "./communicator.js";
import { launchedByMpirun } from "./config.js";
import { type MpiInfo, mpiWorld } from "./mpi.js";

export interface RankProcess {
  /** Rank and size as MPI reports them (MPI_Comm_rank/size of the world). */
  rank: number;
  size: number;
  /** This host's share: its rank among the ranks of this host, and how many there are. */
  localRank: number;
  localSize: number;
  world: Communicator;
  mpi: MpiInfo;
}

let current: RankProcess | undefined;

/**
 * Initialises MPI in a rank started by `polymoe launch` (or mpirun) and applies
 * the launcher's logging rule: ranks other than 0 drop their stdout unless
 * POLYMOE_LOG_ALL_RANKS=1, and every rank's stderr lines carry "[rank r] " so
 * errors stay attributable; stdout counts as a terminal only if the
 * launcher's is (POLYMOE_STDOUT_TTY). Idempotent.
 */
export function initRankProcess(env: NodeJS.ProcessEnv = process.env): RankProcess {
  if (current) return current;
  const { comm, info } = mpiWorld();
  const localRank = Number(env.OMPI_COMM_WORLD_LOCAL_RANK ?? env.MPI_LOCALRANKID ?? 0);
  const localSize = Number(env.OMPI_COMM_WORLD_LOCAL_SIZE ?? env.MPI_LOCALNRANKS ?? 1);
  current = { rank: info.rank, size: info.size, localRank, localSize, world: comm, mpi: info };
  // mpirun hands ranks a pseudo-terminal; the launcher says whether its stdout really is one
  // (progress bars would otherwise fill log files with carriage returns).
  if (env.POLYMOE_STDOUT_TTY === "0") {
    Object.defineProperty(process.stdout, "isTTY", { value: false, configurable: true });
  }
  // `polymoe launch` passes the user's first Ctrl-C / SIGTERM as SIGUSR2 (mpirun forwards it
  // without killing anyone): a rank that handles SIGTERM (a trainer: finish the step, save)
  // gets it as SIGTERM; any other rank stops.
  process.on("SIGUSR2", () => {
    if (process.listenerCount("SIGTERM") > 0) process.emit("SIGTERM", "SIGTERM");
    else process.exit(130);
  });
  if (info.size > 1) {
    if (info.rank !== 0 && env.POLYMOE_LOG_ALL_RANKS !== "1") {
      process.stdout.write = (() => true) as typeof process.stdout.write;
    }
    const write = process.stderr.write.bind(process.stderr);
    let atLineStart = true;
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
      const tag = `[rank ${info.rank}] `;
      let tagged = "";
      text.split("\n").forEach((part, i) => {
        if (i > 0) tagged += "\n";
        if (part !== "" && (i > 0 || atLineStart)) tagged += tag;
        tagged += part;
      });
      if (text !== "") atLineStart = text.endsWith("\n");
      return (write as (c: string, ...r: unknown[]) => boolean)(tagged, ...rest);
    }) as typeof process.stderr.write;
  }
  return current;
}

/** Whether this process is a rank of a launched job (POLYMOE_LAUNCHED=1 or started by mpirun). */
export function isLaunchedRank(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.POLYMOE_LAUNCHED === "1" || launchedByMpirun(env);
}
