// The one configuration of @polymoe/parallel, validated once at the boundary.
import { z } from "zod";

import type { Communicator } from "./communicator.js";
import { ParallelError } from "./errors.js";
import { createLocalCommunicator } from "./local.js";
import { mpiWorld } from "./mpi.js";

export const BACKEND_CHOICES = ["auto", "mpi", "local"] as const;

export const parallelConfigSchema = z.strictObject({
  backend: z
    .enum(BACKEND_CHOICES)
    .default("auto")
    .describe(
      "'mpi' (our Open MPI binding), 'local' (one process), or 'auto': mpi when started by mpirun/polymoe launch, else local",
    ),
  ep: z.int().min(1).default(1).describe("expert-parallel degree: ranks sharing one copy of all experts"),
  tp: z.int().min(1).default(1).describe("tensor-parallel degree: ranks slicing each expert FFN"),
  zeroStage: z
    .union([z.literal(0), z.literal(1), z.literal(2)])
    .default(0)
    .describe("0: replicated optimizer; 1: optimizer state sharded; 2: gradients sharded too"),
  bucketMb: z.number().gt(0).max(4096).default(25).describe("gradient all-reduce bucket size in MiB"),
  checks: z
    .boolean()
    .default(true)
    .describe(
      "exchange a 32-byte signature before each collective so argument mismatches across ranks fail clearly",
    ),
});

export type ParallelConfig = z.infer<typeof parallelConfigSchema>;
export type ParallelConfigInput = z.input<typeof parallelConfigSchema>;

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)] as number[]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1),
      );
    }
  }
  return d[a.length]![b.length]!;
}

/** The valid name closest to `name`, if any is reasonably close. */
export function nearestName(name: string, valid: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const v of valid) {
    const d = distance(name, v);
    if (d < bestD) {
      bestD = d;
      best = v;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : null;
}

/** Validates a parallel config; every problem is listed with its field, and unknown keys name the nearest valid one. */
export function parseParallelConfig(input: unknown, source = "parallel config"): ParallelConfig {
  const r = parallelConfigSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const valid = Object.keys(parallelConfigSchema.shape);
  const lines = r.error.issues.map((issue) => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys
        .map((k) => {
          const near = nearestName(k, valid);
          return `unknown key '${k}'${near ? ` (did you mean '${near}'?)` : ""}; valid keys: ${valid.join(", ")}`;
        })
        .join("\n  ");
    }
    const path = issue.path.join(".") || "(root)";
    return `${path}: ${issue.message}`;
  });
  throw new ParallelError("INVALID_CONFIG", `${source}:\n  ${lines.join("\n  ")}`);
}

/** Whether this process was started by mpirun (Open MPI, or a PMI-based launcher). */
export function launchedByMpirun(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.OMPI_COMM_WORLD_SIZE !== undefined || env.PMIX_RANK !== undefined || env.PMI_RANK !== undefined;
}

/**
 * The world communicator for `config.backend`: 'mpi' initialises MPI (it
 * throws with the fix when the binding is missing), 'local' is one process,
 * 'auto' picks mpi under mpirun and local otherwise.
 */
export function createWorld(config: Pick<ParallelConfig, "backend" | "checks">): Communicator {
  const backend = config.backend === "auto" ? (launchedByMpirun() ? "mpi" : "local") : config.backend;
  if (backend === "mpi") return mpiWorld({ checks: config.checks }).comm;
  return createLocalCommunicator({ checks: config.checks });
}
