// The one configuration of @polymoe/parallel, validated once at the boundary.
import { parseConfig } from "@polymoe/schema";
import { z } from "zod";

import type { Communicator } from "./communicator.js";
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

/**
 * Validates a parallel config (strict: unknown keys fail with the nearest
 * valid name). Throws @polymoe/schema's ConfigError, one line per problem,
 * e.g. `parallel.zero_stage: unknown key (did you mean 'zeroStage'?)`.
 */
export function parseParallelConfig(input: unknown, source?: string): ParallelConfig {
  return parseConfig(
    parallelConfigSchema,
    input ?? {},
    source === undefined ? { prefix: "parallel" } : { prefix: "parallel", source },
  );
}

/** Whether this process was started by mpirun (Open MPI, or a PMI-based launcher). */
export function launchedByMpirun(env: NodeJS.ProcessEnv = process.env): boolean {
  return [env.OMPI_COMM_WORLD_SIZE, env.PMIX_RANK, env.PMI_RANK].some((v) => v !== undefined && v !== "");
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
