import {
  type BlockingTransport,
  Comm,
  type Communicator,
  type CommunicatorOptions,
  type Transport,
} from "./communicator.js";

/**
 * A group of one rank: every collective is a copy. What a single-process run
 * uses, so the same training code runs with and without MPI.
 */
class LocalTransport implements Transport {
  readonly backend = "local" as const;
  readonly rank = 0;
  readonly size = 1;
  // Comm short-circuits every collective of a one-rank group; these are never reached.
  async allReduce(): Promise<boolean> {
    return true;
  }
  async reduceScatter(): Promise<boolean> {
    return true;
  }
  async allGather(): Promise<boolean> {
    return true;
  }
  async allToAll(): Promise<boolean> {
    return true;
  }
  async allToAllV(): Promise<void> {}
  async broadcast(): Promise<boolean> {
    return true;
  }
  async barrier(): Promise<boolean> {
    return true;
  }
  async split(color: number | null): Promise<Transport | null> {
    return color === null ? null : new LocalTransport();
  }
  // Never reached either: Comm runs one-rank blocking collectives itself.
  readonly blocking: BlockingTransport = {
    allReduce: () => true,
    allGather: () => true,
    allToAll: () => true,
    allToAllV: () => {},
  };
  free(): void {}
}

/** The in-process backend: a world of size 1. */
export function createLocalCommunicator(options: CommunicatorOptions & { name?: string } = {}): Communicator {
  return new Comm(new LocalTransport(), options.name ?? "world", options);
}
