// Entry of one simulated rank (a worker thread started by runSimulated).
import { type MessagePort, parentPort, workerData } from "node:worker_threads";

import { Comm, type Communicator } from "./communicator.js";
import { ParallelError } from "./errors.js";
import { Mailbox, SimulatedTransport, SyncMailbox } from "./simulated_transport.js";

interface RankData {
  rank: number;
  size: number;
  ports: (MessagePort | null)[];
  syncPorts: (MessagePort | null)[];
  signals: Int32Array;
  module: string;
  exportName: string;
  args: unknown;
  timeoutMs: number;
  checks: boolean;
}

const data = workerData as RankData;
const port = parentPort!;

async function main(): Promise<void> {
  const members = [...Array(data.size).keys()];
  const transport = new SimulatedTransport(
    new Mailbox(data.rank, data.ports, data.timeoutMs),
    "world",
    members,
    data.rank,
    new SyncMailbox(data.rank, data.syncPorts, data.signals, data.timeoutMs),
  );
  const world: Communicator = new Comm(transport, "world", { checks: data.checks });
  const mod = (await import(data.module)) as Record<string, unknown>;
  const fn = mod[data.exportName];
  if (typeof fn !== "function") {
    const found = Object.keys(mod).filter((k) => typeof mod[k] === "function");
    throw new ParallelError(
      "INVALID_ARGUMENT",
      `runSimulated: ${data.module} has no exported function '${data.exportName}' (functions: ${found.join(", ") || "none"})`,
    );
  }
  const value = await (fn as (c: Communicator, a: unknown) => unknown)(world, data.args);
  port.postMessage({ type: "done", value });
}

main().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  port.postMessage({
    type: "error",
    message: err?.message ?? String(e),
    code: err?.code ?? null,
    stack: err?.stack ?? "",
  });
});
