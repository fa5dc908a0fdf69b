// The simulated backend: N ranks as worker_threads in this process, for fast
// multi-rank tests without MPI. Each rank runs an exported function of a module
// with its own world Communicator; the collectives move data through
// SharedArrayBuffers over MessagePorts (see simulated_transport.ts).
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";

import type { Communicator } from "./communicator.js";
import { ParallelError, type ParallelErrorCode } from "./errors.js";

/** A function one simulated rank runs; its result must be structured-cloneable. */
export type RankFunction<A = unknown, R = unknown> = (world: Communicator, args: A) => Promise<R> | R;

export interface SimulatedRunOptions<A> {
  /** Number of ranks (worker threads), >= 1. */
  worldSize: number;
  /** The module holding the rank function: a file URL or an absolute path. TypeScript works in development (through tsx). */
  module: string | URL;
  /** Name of the exported rank function. Default "default". */
  export?: string;
  /** Passed to every rank's function (structured-cloned). */
  args?: A;
  /** A rank waiting longer than this for a peer fails with code TIMEOUT. Default 30000. */
  timeoutMs?: number;
  /** The whole run (worker start-up included) fails with code TIMEOUT after this. Default 120000. */
  runTimeoutMs?: number;
  /** Cross-rank argument checks before each collective (see CommunicatorOptions). Default true. */
  checks?: boolean;
}

const ERROR_CODES = new Set<string>([
  "MPI_UNAVAILABLE",
  "INVALID_ARGUMENT",
  "RANK_MISMATCH",
  "INVALID_LAYOUT",
  "TIMEOUT",
  "COMM_FAILED",
  "COMM_CLOSED",
  "LAUNCH_FAILED",
]);

const BOOT = `
const { workerData } = require("node:worker_threads");
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.entry);
})().catch((e) => { setImmediate(() => { throw e; }); });
`;

function workerEntry(): { entry: string; typescript: boolean } {
  const js = new URL("./simulated_worker.js", import.meta.url);
  if (existsSync(fileURLToPath(js))) return { entry: js.href, typescript: false };
  return { entry: new URL("./simulated_worker.ts", import.meta.url).href, typescript: true };
}

function tsxLoader(): string {
  try {
    // The ESM build of tsx's register API, located through tsx's exports map.
    const pkgJson = createRequire(import.meta.url).resolve("tsx/package.json");
    const pkg = JSON.parse(readFileSync(pkgJson, "utf8")) as {
      exports: Record<string, { import: { default: string } }>;
    };
    return new URL(pkg.exports["./esm/api"]!.import.default, pathToFileURL(pkgJson)).href;
  } catch {
    throw new ParallelError(
      "INVALID_ARGUMENT",
      "runSimulated: loading TypeScript rank modules needs the tsx package (pnpm add -D tsx), or pass a compiled .js module",
    );
  }
}

/**
 * Runs `worldSize` simulated ranks, each calling the module's exported function
 * with its world communicator; resolves to the results in rank order. If any
 * rank throws, every rank is stopped and the Promise rejects with that rank's
 * error (code preserved, message prefixed with the rank).
 */
export async function runSimulated<A = unknown, R = unknown>(options: SimulatedRunOptions<A>): Promise<R[]> {
  const { worldSize } = options;
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    throw new ParallelError(
      "INVALID_ARGUMENT",
      `runSimulated: worldSize must be an integer >= 1, got ${worldSize}`,
    );
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  const runTimeoutMs = options.runTimeoutMs ?? 120_000;
  const module =
    options.module instanceof URL
      ? options.module.href
      : options.module.startsWith("file:")
        ? options.module
        : pathToFileURL(options.module).href;
  const { entry, typescript } = workerEntry();
  const tsx = typescript || module.endsWith(".ts") ? tsxLoader() : null;

  // Full meshes of ports: ports[i][j] is rank i's end of the (i, j) channel.
  // One mesh for the asynchronous collectives, one for the blocking ones.
  const mesh = () => {
    const ports: (MessagePort | null)[][] = Array.from({ length: worldSize }, () =>
      Array(worldSize).fill(null),
    );
    for (let i = 0; i < worldSize; i++) {
      for (let j = i + 1; j < worldSize; j++) {
        const ch = new MessageChannel();
        ports[i]![j] = ch.port1;
        ports[j]![i] = ch.port2;
      }
    }
    return ports;
  };
  const ports = mesh();
  const syncPorts = mesh();
  const signals = new Int32Array(new SharedArrayBuffer(4 * worldSize));

  const workers: Worker[] = [];
  const results: R[] = new Array(worldSize);
  return new Promise<R[]>((resolve, reject) => {
    let remaining = worldSize;
    let settled = false;
    const finish = (err: ParallelError | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const w of workers) void w.terminate();
      if (err) reject(err);
      else resolve(results);
    };
    const timer = setTimeout(() => {
      finish(
        new ParallelError(
          "TIMEOUT",
          `runSimulated: ${remaining} of ${worldSize} ranks did not finish within ${runTimeoutMs} ms`,
        ),
      );
    }, runTimeoutMs);
    for (let rank = 0; rank < worldSize; rank++) {
      const own = ports[rank]!;
      const ownSync = syncPorts[rank]!;
      const worker = new Worker(BOOT, {
        eval: true,
        workerData: {
          entry,
          tsx,
          rank,
          size: worldSize,
          ports: own,
          syncPorts: ownSync,
          signals,
          module,
          exportName: options.export ?? "default",
          args: options.args,
          timeoutMs,
          checks: options.checks ?? true,
        },
        transferList: [...own, ...ownSync].filter((p): p is MessagePort => p !== null),
      });
      workers.push(worker);
      worker.on(
        "message",
        (m: { type: string; value?: R; message?: string; code?: string | null; stack?: string }) => {
          if (m.type === "done") {
            results[rank] = m.value as R;
            if (--remaining === 0) finish(null);
          } else if (m.type === "error") {
            const code = (m.code && ERROR_CODES.has(m.code) ? m.code : "COMM_FAILED") as ParallelErrorCode;
            const e = new ParallelError(code, `simulated rank ${rank}: ${m.message}`);
            if (m.stack) e.stack = `${e.name}: ${e.message}\n--- in rank ${rank}:\n${m.stack}`;
            finish(e);
          }
        },
      );
      worker.on("error", (e) =>
        finish(new ParallelError("COMM_FAILED", `simulated rank ${rank} crashed: ${e.message}`)),
      );
      worker.on("exit", (code) => {
        if (!settled)
          finish(
            new ParallelError("COMM_FAILED", `simulated rank ${rank} exited (code ${code}) before finishing`),
          );
      });
    }
  });
}
