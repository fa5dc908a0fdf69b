// The MPI backend: our N-API binding (native/src/mpi_addon.cc), loaded only
// when asked for, so every other part of this package works without MPI.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import {
  type BlockingTransport,
  type CollectiveArray,
  Comm,
  type Communicator,
  type CommunicatorOptions,
  type ReduceOp,
  type SignatureCheck,
  type Transport,
} from "./communicator.js";
import { ParallelError } from "./errors.js";

/** What MPI_Init reported. */
export interface MpiInfo {
  rank: number;
  size: number;
  /** MPI_THREAD_MULTIPLE was provided (required: collectives run on each communicator's own thread). */
  threadMultiple: boolean;
  threadLevel: number;
  /** MPI standard version, e.g. "3.1". */
  mpiVersion: string;
  /** MPI_Get_library_version's first line, e.g. "Open MPI v4.1.4, …". */
  library: string;
  host: string;
}

interface MpiAddon {
  init(): MpiInfo;
  allocBuffer(bytes: number): ArrayBuffer;
  state(): { initialized: boolean; finalized: boolean };
  finalize(): void;
  abort(code: number): void;
  wtime(): number;
  lastSeconds(): number;
  rank(h: number): number;
  size(h: number): number;
  split(h: number, color: number, key: number): Promise<number>;
  free(h: number): void;
  // The optional trailing (sig, all) run the fused argument check; the Promise
  // resolves to 0 when the collective ran, 1 when the signatures disagreed.
  allReduce(
    h: number,
    send: CollectiveArray,
    recv: CollectiveArray,
    op: ReduceOp,
    sig?: Int32Array,
    all?: Int32Array,
  ): Promise<number>;
  reduceScatter(
    h: number,
    send: CollectiveArray,
    recv: CollectiveArray,
    op: ReduceOp,
    sig?: Int32Array,
    all?: Int32Array,
  ): Promise<number>;
  allGather(
    h: number,
    send: CollectiveArray,
    recv: CollectiveArray,
    sig?: Int32Array,
    all?: Int32Array,
  ): Promise<number>;
  allToAll(
    h: number,
    send: CollectiveArray,
    recv: CollectiveArray,
    sig?: Int32Array,
    all?: Int32Array,
  ): Promise<number>;
  allToAllV(
    h: number,
    send: CollectiveArray,
    sendCounts: Int32Array,
    sendDispls: Int32Array,
    recv: CollectiveArray,
    recvCounts: Int32Array,
    recvDispls: Int32Array,
  ): Promise<number>;
  broadcast(
    h: number,
    buf: CollectiveArray,
    root: number,
    sig?: Int32Array,
    all?: Int32Array,
  ): Promise<number>;
  barrier(h: number, sig?: Int32Array, all?: Int32Array): Promise<number>;
  // Blocking variants: the same collective on the calling thread; 0 = ran, 1 = signatures disagreed.
  allReduceSync(
    h: number,
    send: CollectiveArray,
    recv: CollectiveArray,
    op: ReduceOp,
    sig?: Int32Array,
    all?: Int32Array,
  ): number;
  allGatherSync(
    h: number,
    send: CollectiveArray,
    recv: CollectiveArray,
    sig?: Int32Array,
    all?: Int32Array,
  ): number;
  allToAllSync(
    h: number,
    send: CollectiveArray,
    recv: CollectiveArray,
    sig?: Int32Array,
    all?: Int32Array,
  ): number;
  allToAllVSync(
    h: number,
    send: CollectiveArray,
    sendCounts: Int32Array,
    sendDispls: Int32Array,
    recv: CollectiveArray,
    recvCounts: Int32Array,
    recvDispls: Int32Array,
  ): number;
}

const FIX =
  "on Debian/Ubuntu: apt-get install -y libopenmpi-dev openmpi-bin, then pnpm --filter @polymoe/parallel build:native";

/** Where the binding is looked for: POLYMOE_MPI_ADDON, else this package's build/Release. */
export function mpiAddonPath(): string {
  return (
    process.env.POLYMOE_MPI_ADDON ??
    fileURLToPath(new URL("../build/Release/polymoe_mpi.node", import.meta.url))
  );
}

type Loaded = { addon: MpiAddon; reason: null } | { addon: null; reason: string };
let loaded: Loaded | undefined;

function load(): Loaded {
  if (loaded) return loaded;
  const file = mpiAddonPath();
  if (!existsSync(file)) {
    loaded = {
      addon: null,
      reason: `the MPI binding was not found at ${file} (it is built when @polymoe/parallel installs, if MPI is present; ${FIX})`,
    };
    return loaded;
  }
  try {
    loaded = { addon: createRequire(import.meta.url)(file) as MpiAddon, reason: null };
  } catch (e) {
    loaded = {
      addon: null,
      reason: `the MPI binding at ${file} failed to load: ${(e as Error).message.split("\n")[0]} (${FIX})`,
    };
  }
  return loaded;
}

/** Whether the MPI backend can be used here, and if not, why. Never throws; does not initialise MPI. */
export function mpiAvailability(): { available: true } | { available: false; reason: string } {
  const l = load();
  return l.addon ? { available: true } : { available: false, reason: l.reason };
}

class MpiTransport implements Transport {
  readonly backend = "mpi" as const;
  readonly rank: number;
  readonly size: number;
  constructor(
    private readonly addon: MpiAddon,
    private readonly handle: number,
  ) {
    this.rank = addon.rank(handle);
    this.size = addon.size(handle);
  }
  async allReduce(
    send: CollectiveArray,
    recv: CollectiveArray,
    op: ReduceOp,
    check?: SignatureCheck,
  ): Promise<boolean> {
    return (await this.addon.allReduce(this.handle, send, recv, op, check?.sig, check?.all)) === 0;
  }
  async reduceScatter(
    send: CollectiveArray,
    recv: CollectiveArray,
    op: ReduceOp,
    check?: SignatureCheck,
  ): Promise<boolean> {
    return (await this.addon.reduceScatter(this.handle, send, recv, op, check?.sig, check?.all)) === 0;
  }
  async allGather(send: CollectiveArray, recv: CollectiveArray, check?: SignatureCheck): Promise<boolean> {
    return (await this.addon.allGather(this.handle, send, recv, check?.sig, check?.all)) === 0;
  }
  async allToAll(send: CollectiveArray, recv: CollectiveArray, check?: SignatureCheck): Promise<boolean> {
    return (await this.addon.allToAll(this.handle, send, recv, check?.sig, check?.all)) === 0;
  }
  async allToAllV(
    send: CollectiveArray,
    sendCounts: Int32Array,
    sendDispls: Int32Array,
    recv: CollectiveArray,
    recvCounts: Int32Array,
    recvDispls: Int32Array,
  ): Promise<void> {
    await this.addon.allToAllV(this.handle, send, sendCounts, sendDispls, recv, recvCounts, recvDispls);
  }
  async broadcast(buf: CollectiveArray, root: number, check?: SignatureCheck): Promise<boolean> {
    return (await this.addon.broadcast(this.handle, buf, root, check?.sig, check?.all)) === 0;
  }
  async barrier(check?: SignatureCheck): Promise<boolean> {
    return (await this.addon.barrier(this.handle, check?.sig, check?.all)) === 0;
  }
  async split(color: number | null, key: number): Promise<Transport | null> {
    const h = await this.addon.split(this.handle, color ?? -1, key);
    return h < 0 ? null : new MpiTransport(this.addon, h);
  }
  readonly blocking: BlockingTransport = {
    allReduce: (send, recv, op, check) =>
      this.addon.allReduceSync(this.handle, send, recv, op, check?.sig, check?.all) === 0,
    allGather: (send, recv, check) =>
      this.addon.allGatherSync(this.handle, send, recv, check?.sig, check?.all) === 0,
    allToAll: (send, recv, check) =>
      this.addon.allToAllSync(this.handle, send, recv, check?.sig, check?.all) === 0,
    allToAllV: (send, sendCounts, sendDispls, recv, recvCounts, recvDispls) => {
      this.addon.allToAllVSync(this.handle, send, sendCounts, sendDispls, recv, recvCounts, recvDispls);
    },
  };
  free(): void {
    if (this.handle !== 0 && !this.addon.state().finalized) this.addon.free(this.handle);
  }
}

let world: { comm: Communicator; info: MpiInfo; addon: MpiAddon } | undefined;

function requireAddon(): MpiAddon {
  const l = load();
  if (!l.addon) throw new ParallelError("MPI_UNAVAILABLE", `MPI backend unavailable: ${l.reason}`);
  return l.addon;
}

/**
 * Initialises MPI (once per process, MPI_THREAD_MULTIPLE) and returns the world
 * communicator. Works under mpirun and as a singleton (a plain `node` process
 * is a world of one). At a clean exit (code 0) MPI is finalised; a rank that
 * exits non-zero skips MPI_Finalize, and mpirun then stops the whole job, so
 * peers blocked in a collective with this rank do not hang.
 */
export function mpiWorld(options: CommunicatorOptions = {}): { comm: Communicator; info: MpiInfo } {
  if (world) return { comm: world.comm, info: world.info };
  const addon = requireAddon();
  const info = addon.init();
  if (!info.threadMultiple) {
    throw new ParallelError(
      "MPI_UNAVAILABLE",
      `${info.library} provides thread level ${info.threadLevel}, not MPI_THREAD_MULTIPLE; ` +
        "PolyMoE runs collectives on each communicator's own thread and needs it (build Open MPI with --enable-mpi-thread-multiple)",
    );
  }
  process.on("exit", (code) => {
    const s = addon.state();
    if (!s.initialized || s.finalized) return;
    // A failing rank must not finalize: MPI_Finalize waits for every peer, and
    // peers blocked in a collective with this rank would never arrive. Exiting
    // non-zero without finalizing makes mpirun stop the whole job (after Node
    // has printed the error).
    if (code === 0) addon.finalize();
  });
  world = { comm: new Comm(new MpiTransport(addon, 0), "world", options), info, addon };
  return { comm: world.comm, info };
}

/** Finalises MPI now (otherwise done at exit). Every rank must call it; no collective may be pending. */
export function finalizeMpi(): void {
  world?.addon.finalize();
}

/** Seconds on MPI's clock (MPI_Wtime); requires mpiWorld() first. */
export function mpiWtime(): number {
  return requireAddon().wtime();
}

/**
 * Seconds the last collective completed in this process spent inside MPI (its
 * argument check included). Against the time the caller measured around the
 * same call it gives the binding's own cost (bench:comm). With collectives of
 * several communicators in flight, "last" is whichever finished last.
 */
export function mpiLastCollectiveSeconds(): number {
  return requireAddon().lastSeconds();
}

type ArrayKind = Float32ArrayConstructor | Float64ArrayConstructor | Int32ArrayConstructor;

/**
 * A zeroed typed array for communication buffers (gradient buckets, ZeRO flat
 * buffers, all-to-all buffers). Once MPI is initialised in this process
 * (mpiWorld), the memory is 2 MiB-aligned and advised for transparent huge
 * pages, which makes Open MPI's single-copy transfers between ranks of one host
 * faster (docs/benchmarks.md); otherwise it is a plain typed array.
 */
export function commBuffer<K extends ArrayKind = Float32ArrayConstructor>(
  length: number,
  kind: K = Float32Array as K,
): InstanceType<K> {
  if (!Number.isInteger(length) || length < 0) {
    throw new ParallelError(
      "INVALID_ARGUMENT",
      `commBuffer: length must be a non-negative integer, got ${length}`,
    );
  }
  if (!world) return new kind(length) as InstanceType<K>;
  return new kind(world.addon.allocBuffer(length * kind.BYTES_PER_ELEMENT)) as InstanceType<K>;
}
