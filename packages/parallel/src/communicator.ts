// The Communicator interface and the one implementation of its semantics
// (argument validation, cross-rank agreement, per-communicator ordering,
// call counting) shared by every backend. Backends only move bytes: they
// implement `Transport`.
import { ParallelError } from "./errors.js";

/** Element types a collective accepts. Reductions of Int32Array wrap on overflow as in C. */
export type CollectiveArray = Float32Array | Float64Array | Int32Array;
export type ReduceOp = "sum" | "max" | "min";
export type BackendName = "mpi" | "local" | "simulated";

const SIG = 8; // int32 signature slots: kind, dtype, length, param, localError, seq, spare, spare

export const COLLECTIVES = [
  "allReduce",
  "reduceScatter",
  "allGather",
  "allToAll",
  "allToAllV",
  "broadcast",
  "barrier",
  "split",
] as const;
export type CollectiveName = (typeof COLLECTIVES)[number];

/** Calls of one collective on one communicator, and the elements/bytes this rank passed in. */
export interface CollectiveCount {
  calls: number;
  elements: number;
  bytes: number;
}
export type CollectiveStats = Record<CollectiveName, CollectiveCount>;

/**
 * A group of ranks and the collectives among them. Every method is a collective:
 * every rank of the group must call it, in the same order, with agreeing
 * arguments (same kind, element type, length, root). Arrays are used in place,
 * zero-copy; do not touch them until the returned Promise settles.
 *
 * Collectives of one communicator run one after another in call order (so
 * `Promise.all` over several is safe); collectives of different communicators
 * may overlap.
 */
export interface Communicator {
  readonly backend: BackendName;
  /** A path naming the group, e.g. "world", "world/ep". */
  readonly name: string;
  /** This process's rank in the group, 0 <= rank < size. */
  readonly rank: number;
  readonly size: number;

  /** Elementwise reduction over ranks; in place unless `out` is given. Resolves to the result array. */
  allReduce<T extends CollectiveArray>(buf: T, options?: { op?: ReduceOp; out?: T }): Promise<T>;
  /**
   * `send` is `size` equal blocks; rank r receives the reduction of every rank's block r.
   * `<dtype>[size * n] -> [n]`.
   */
  reduceScatter<T extends CollectiveArray>(send: T, options?: { op?: ReduceOp; out?: T }): Promise<T>;
  /** Every rank's `send` concatenated in rank order: `[n] -> [size * n]`. */
  allGather<T extends CollectiveArray>(send: T, options?: { out?: T }): Promise<T>;
  /** Block j of `send` goes to rank j; block i of the result came from rank i: `[size * n] -> [size * n]`. */
  allToAll<T extends CollectiveArray>(send: T, options?: { out?: T }): Promise<T>;
  /**
   * Variable-size all-to-all. `send` holds `sendCounts[j]` elements for rank j,
   * contiguous in rank order; the result holds `recvCounts[i]` elements from rank
   * i in rank order. `recvCounts` is exchanged (one small allToAll) when omitted.
   */
  allToAllV<T extends CollectiveArray>(
    send: T,
    layout: {
      sendCounts: Int32Array | readonly number[];
      recvCounts?: Int32Array | readonly number[];
      out?: T;
    },
  ): Promise<{ data: T; recvCounts: Int32Array }>;
  /** Copies `root`'s array into every rank's array (in place). */
  broadcast<T extends CollectiveArray>(buf: T, options?: { root?: number }): Promise<T>;
  barrier(): Promise<void>;
  /**
   * Splits into sub-communicators: ranks passing the same `color` form one,
   * ordered by (`key`, parent rank). `color: null` opts out (resolves to null).
   */
  split(options: { color: number | null; key?: number; name?: string }): Promise<Communicator | null>;

  /**
   * Blocking collectives, for use inside a synchronous computation (the MoE
   * all-to-all and tensor-parallel reductions inside a forward or backward
   * pass, which cannot await). Same arguments, checks and results as the
   * asynchronous versions, but they return when the collective completed,
   * running on the calling thread. They throw (INVALID_ARGUMENT) while an
   * asynchronous collective of this communicator is pending: await it first.
   * Counted in stats() under the collective's name.
   */
  allReduceSync<T extends CollectiveArray>(buf: T, options?: { op?: ReduceOp; out?: T }): T;
  allGatherSync<T extends CollectiveArray>(send: T, options?: { out?: T }): T;
  allToAllSync<T extends CollectiveArray>(send: T, options?: { out?: T }): T;
  allToAllVSync<T extends CollectiveArray>(
    send: T,
    layout: {
      sendCounts: Int32Array | readonly number[];
      recvCounts?: Int32Array | readonly number[];
      out?: T;
    },
  ): { data: T; recvCounts: Int32Array };

  /** Calls counted on this communicator since creation or the last resetStats(). */
  stats(): CollectiveStats;
  resetStats(): void;
  /** Releases the communicator (not the world) once its pending collectives settled. Collectives issued after free() reject. */
  free(): void;
}

/**
 * The cross-rank argument check fused into a collective: the transport first
 * allGathers `sig` (8 int32 per rank) into `all`, then runs the collective only
 * if every rank's signature agrees (slots 0-3 equal, slot 4 zero).
 */
export interface SignatureCheck {
  sig: Int32Array;
  all: Int32Array;
}

/**
 * What a backend implements: raw data movement on validated arguments. Methods
 * taking a `check` resolve to false (and move nothing) when the signatures
 * disagree; Comm then reads `check.all` and throws the same error on every rank.
 */
export interface Transport {
  readonly backend: BackendName;
  readonly rank: number;
  readonly size: number;
  allReduce(
    send: CollectiveArray,
    recv: CollectiveArray,
    op: ReduceOp,
    check?: SignatureCheck,
  ): Promise<boolean>;
  reduceScatter(
    send: CollectiveArray,
    recv: CollectiveArray,
    op: ReduceOp,
    check?: SignatureCheck,
  ): Promise<boolean>;
  allGather(send: CollectiveArray, recv: CollectiveArray, check?: SignatureCheck): Promise<boolean>;
  allToAll(send: CollectiveArray, recv: CollectiveArray, check?: SignatureCheck): Promise<boolean>;
  allToAllV(
    send: CollectiveArray,
    sendCounts: Int32Array,
    sendDispls: Int32Array,
    recv: CollectiveArray,
    recvCounts: Int32Array,
    recvDispls: Int32Array,
  ): Promise<void>;
  broadcast(buf: CollectiveArray, root: number, check?: SignatureCheck): Promise<boolean>;
  barrier(check?: SignatureCheck): Promise<boolean>;
  split(color: number | null, key: number): Promise<Transport | null>;
  /** Blocking data movement on the calling thread, or null if the backend has none. */
  readonly blocking: BlockingTransport | null;
  free(): void;
}

/** The blocking subset of a Transport (see Communicator's *Sync methods); same contracts, no Promise. */
export interface BlockingTransport {
  allReduce(send: CollectiveArray, recv: CollectiveArray, op: ReduceOp, check?: SignatureCheck): boolean;
  allGather(send: CollectiveArray, recv: CollectiveArray, check?: SignatureCheck): boolean;
  allToAll(send: CollectiveArray, recv: CollectiveArray, check?: SignatureCheck): boolean;
  allToAllV(
    send: CollectiveArray,
    sendCounts: Int32Array,
    sendDispls: Int32Array,
    recv: CollectiveArray,
    recvCounts: Int32Array,
    recvDispls: Int32Array,
  ): void;
}

/** Whether every rank's signature in `all` agrees with rank 0's and none flagged a local error. */
export function signaturesAgree(all: Int32Array, size: number): boolean {
  for (let r = 0; r < size; r++) {
    if (all[r * SIG + 4] !== 0) return false;
    for (let k = 0; k < 4; k++) if (all[r * SIG + k] !== all[k]) return false;
  }
  return true;
}

export interface CommunicatorOptions {
  /**
   * Before each collective, ranks exchange a 32-byte signature (kind, element
   * type, length, root/op, local errors) so a mismatch rejects on every rank
   * with a message naming the ranks, instead of hanging or corrupting memory.
   * Costs one tiny allGather per collective. Default true.
   */
  checks?: boolean;
}

const OP_CODES: Record<ReduceOp, number> = { sum: 1, max: 2, min: 3 };
const KIND_CODES: Record<CollectiveName, number> = {
  allReduce: 1,
  reduceScatter: 2,
  allGather: 3,
  allToAll: 4,
  allToAllV: 5,
  broadcast: 6,
  barrier: 7,
  split: 8,
};
const KIND_BY_CODE = Object.fromEntries(Object.entries(KIND_CODES).map(([k, v]) => [v, k]));
const DTYPES = ["Float32Array", "Float64Array", "Int32Array"] as const;
type DtypeName = (typeof DTYPES)[number];

/** The element type name of a collective array, or a ParallelError naming what was passed. */
export function dtypeOf(x: unknown, what: string): DtypeName {
  if (x instanceof Float32Array) return "Float32Array";
  if (x instanceof Float64Array) return "Float64Array";
  if (x instanceof Int32Array) return "Int32Array";
  const got =
    x === null
      ? "null"
      : ArrayBuffer.isView(x)
        ? (x as { constructor: { name: string } }).constructor.name
        : Array.isArray(x)
          ? "a plain Array"
          : typeof x;
  throw new ParallelError(
    "INVALID_ARGUMENT",
    `${what} must be a Float32Array, Float64Array or Int32Array, got ${got}` +
      (Array.isArray(x) ? " (wrap it: new Float32Array(values))" : ""),
  );
}

function allocLike<T extends CollectiveArray>(x: T, n: number): T {
  return new (x.constructor as new (n: number) => T)(n);
}

function toInt32(x: Int32Array | readonly number[], what: string, n: number): Int32Array {
  if (!(x instanceof Int32Array) && !Array.isArray(x)) {
    throw new ParallelError("INVALID_ARGUMENT", `${what} must be an Int32Array or an array of integers`);
  }
  const a = x instanceof Int32Array ? x : Int32Array.from(x as readonly number[]);
  if (!(x instanceof Int32Array)) {
    (x as readonly number[]).forEach((v, i) => {
      if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
        throw new ParallelError("INVALID_ARGUMENT", `${what}[${i}] must be a non-negative integer, got ${v}`);
      }
    });
  }
  if (a.length !== n) {
    throw new ParallelError("INVALID_ARGUMENT", `${what} has ${a.length} entries, needs one per rank (${n})`);
  }
  for (let i = 0; i < a.length; i++) {
    if (a[i]! < 0) throw new ParallelError("INVALID_ARGUMENT", `${what}[${i}] is negative (${a[i]})`);
  }
  return a;
}

function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

function prefix(counts: Int32Array): Int32Array {
  const d = new Int32Array(counts.length);
  let s = 0;
  for (let i = 0; i < counts.length; i++) {
    d[i] = s;
    s += counts[i]!;
  }
  return d;
}

function sum(counts: Int32Array): number {
  let s = 0;
  for (const c of counts) s += c;
  return s;
}

function emptyStats(): CollectiveStats {
  const s = {} as CollectiveStats;
  for (const k of COLLECTIVES) s[k] = { calls: 0, elements: 0, bytes: 0 };
  return s;
}

/** Wraps a Transport into a Communicator. Backends construct this; users get it from the backend factories. */
export class Comm implements Communicator {
  readonly backend: BackendName;
  readonly rank: number;
  readonly size: number;
  private tail: Promise<unknown> = Promise.resolve();
  private counts = emptyStats();
  private seq = 0;
  private freed = false;
  /** Asynchronous collectives issued and not yet settled. */
  private pending = 0;
  private readonly checks: boolean;

  constructor(
    private readonly transport: Transport,
    readonly name: string,
    options: CommunicatorOptions = {},
  ) {
    this.backend = transport.backend;
    this.rank = transport.rank;
    this.size = transport.size;
    this.checks = options.checks ?? true;
  }

  stats(): CollectiveStats {
    return structuredClone(this.counts);
  }

  resetStats(): void {
    this.counts = emptyStats();
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    // Collectives already issued still run; the transport goes after the last one.
    const transport = this.transport;
    this.tail = this.tail.then(() => transport.free());
  }

  private where(kind: CollectiveName): string {
    return `${kind} #${this.seq} on '${this.name}' (${this.size} ranks)`;
  }

  private count(kind: CollectiveName, x?: CollectiveArray): void {
    const c = this.counts[kind];
    c.calls++;
    if (x) {
      c.elements += x.length;
      c.bytes += x.byteLength;
    }
  }

  /** Runs `body` after every earlier collective of this communicator settled. */
  private enqueue<R>(
    kind: CollectiveName,
    sig: Int32Array,
    localError: string | null,
    body: (check: SignatureCheck | undefined, where: string) => Promise<R>,
    options: { fused: boolean } = { fused: true },
  ): Promise<R> {
    if (this.freed) {
      return Promise.reject(
        new ParallelError("COMM_CLOSED", `${kind} on '${this.name}': the communicator was freed`),
      );
    }
    this.seq++;
    const seq = this.seq;
    const where = this.where(kind);
    const run = async (): Promise<R> => {
      try {
        let check: SignatureCheck | undefined;
        if (this.checks && this.size > 1) {
          sig[4] = localError ? 1 : 0;
          sig[5] = seq;
          // A rank with bad arguments must not hand them to the transport: it
          // joins the signature exchange alone (the same allGather its peers
          // run before their collective) and everyone throws.
          if (localError || !options.fused) await this.agree(where, sig, localError);
          else check = { sig, all: new Int32Array(SIG * this.size) };
        } else if (localError) throw new ParallelError("INVALID_ARGUMENT", `${where}: ${localError}`);
        return await body(check, where);
      } catch (e) {
        // Argument errors already name the collective; transport failures get the name here.
        if (e instanceof ParallelError && (e.code === "INVALID_ARGUMENT" || e.code === "RANK_MISMATCH"))
          throw e;
        const code = e instanceof ParallelError ? e.code : "COMM_FAILED";
        throw new ParallelError(code, `${where}: ${(e as Error).message}`);
      }
    };
    this.pending++;
    const p = this.tail.then(run, run).finally(() => {
      this.pending--;
    });
    this.tail = p.catch(() => undefined);
    return p;
  }

  /**
   * The blocking counterpart of enqueue: validates, runs the (fused) argument
   * check and `body` on this thread. Refuses while asynchronous collectives of
   * this communicator are pending: MPI needs every rank to issue them in the
   * same order, and a blocking call would overtake them.
   */
  private runBlocking<R>(
    kind: CollectiveName,
    sig: Int32Array,
    localError: string | null,
    body: (t: BlockingTransport, check: SignatureCheck | undefined, where: string) => R,
    options: { fused: boolean } = { fused: true },
  ): R {
    const name = `${kind}Sync`;
    const transport = this.transport.blocking;
    if (!transport && this.size > 1) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        `${name} on '${this.name}': the ${this.backend} backend has no blocking collectives`,
      );
    }
    this.seq++;
    const where = this.where(kind).replace(kind, name);
    try {
      let check: SignatureCheck | undefined;
      if (this.checks && this.size > 1) {
        sig[4] = localError ? 1 : 0;
        sig[5] = this.seq;
        if (localError || !options.fused) this.agreeSync(where, sig, localError);
        else check = { sig, all: new Int32Array(SIG * this.size) };
      } else if (localError) throw new ParallelError("INVALID_ARGUMENT", `${where}: ${localError}`);
      return body(transport as BlockingTransport, check, where);
    } catch (e) {
      if (e instanceof ParallelError && (e.code === "INVALID_ARGUMENT" || e.code === "RANK_MISMATCH"))
        throw e;
      const code = e instanceof ParallelError ? e.code : "COMM_FAILED";
      throw new ParallelError(code, `${where}: ${(e as Error).message}`);
    }
  }

  /** Refuses a blocking collective on a freed communicator or while async ones are pending. */
  private guardBlocking(kind: CollectiveName): void {
    const name = `${kind}Sync`;
    if (this.freed) {
      throw new ParallelError("COMM_CLOSED", `${name} on '${this.name}': the communicator was freed`);
    }
    if (this.pending > 0) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        `${name} on '${this.name}': ${this.pending} asynchronous collective(s) of this communicator are still ` +
          "pending; await them before a blocking collective (it would overtake them)",
      );
    }
  }

  private agreeSync(where: string, sig: Int32Array, localError: string | null): void {
    sig[4] = localError ? 1 : 0;
    const all = new Int32Array(SIG * this.size);
    (this.transport.blocking as BlockingTransport).allGather(sig, all);
    this.verify(where, all, localError);
  }

  /** After a fused collective refused to run: throws the error its signatures describe. */
  private refused(where: string, check: SignatureCheck | undefined): never {
    if (check) this.verify(where, check.all, null);
    throw new ParallelError("COMM_FAILED", `${where}: the transport refused the collective without a reason`);
  }

  /**
   * Exchanges signatures; throws the same error on every rank when any rank
   * reported a local error or the ranks disagree.
   */
  private async agree(where: string, sig: Int32Array, localError: string | null): Promise<void> {
    sig[4] = localError ? 1 : 0;
    const all = new Int32Array(SIG * this.size);
    await this.transport.allGather(sig, all);
    this.verify(where, all, localError);
  }

  /** Throws (the same error on every rank) unless every signature in `all` agrees. */
  private verify(where: string, all: Int32Array, localError: string | null): void {
    const at = (r: number, k: number) => all[r * SIG + k]!;
    const ranks = [...Array(this.size).keys()];
    const bad = ranks.filter((r) => at(r, 4) !== 0);
    if (bad.length > 0) {
      const mine = localError ? `: ${localError}` : "";
      throw new ParallelError(
        localError ? "INVALID_ARGUMENT" : "RANK_MISMATCH",
        `${where}: rank${bad.length > 1 ? "s" : ""} ${bad.join(", ")} passed invalid arguments${mine}` +
          (localError ? "" : " (see that rank's error)"),
      );
    }
    const differs = (k: number) => ranks.some((r) => at(r, k) !== at(0, k));
    const list = (k: number, f: (v: number) => string) =>
      ranks.map((r) => `rank ${r}: ${f(at(r, k))}`).join(", ");
    if (differs(0)) {
      throw new ParallelError(
        "RANK_MISMATCH",
        `${where}: ranks called different collectives (${list(0, (v) => KIND_BY_CODE[v] ?? `#${v}`)}); ` +
          "every rank must issue the same collectives in the same order",
      );
    }
    if (differs(1)) {
      throw new ParallelError(
        "RANK_MISMATCH",
        `${where}: element types differ across ranks (${list(1, (v) => DTYPES[v] ?? `#${v}`)}); every rank must pass the same typed-array type`,
      );
    }
    if (differs(2)) {
      throw new ParallelError(
        "RANK_MISMATCH",
        `${where}: lengths differ across ranks (${list(2, String)}); every rank must pass the same number of elements`,
      );
    }
    if (differs(3)) {
      const kind = KIND_BY_CODE[at(0, 0)];
      const what = kind === "broadcast" ? "root" : "reduce op";
      const fmt =
        kind === "broadcast"
          ? String
          : (v: number) => Object.entries(OP_CODES).find(([, c]) => c === v)?.[0] ?? String(v);
      throw new ParallelError("RANK_MISMATCH", `${where}: ${what} differs across ranks (${list(3, fmt)})`);
    }
  }

  private signature(
    kind: CollectiveName,
    dtype: DtypeName | null,
    length: number,
    param: number,
  ): Int32Array {
    const s = new Int32Array(SIG);
    s[0] = KIND_CODES[kind];
    s[1] = dtype === null ? -1 : DTYPES.indexOf(dtype);
    s[2] = length;
    s[3] = param;
    return s;
  }

  /** Runs local validation; returns its message instead of throwing, so peers learn of it. */
  private validate(fn: () => void): string | null {
    try {
      fn();
      return null;
    } catch (e) {
      if (e instanceof ParallelError) return e.message;
      throw e;
    }
  }

  private checkOut<T extends CollectiveArray>(
    send: T,
    out: T | undefined,
    n: number,
    allowSame: boolean,
  ): void {
    if (out === undefined) return;
    const dt = dtypeOf(out, "out");
    if (dt !== dtypeOf(send, "input")) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        `out is a ${dt} but the input is a ${send.constructor.name}; pass the same type`,
      );
    }
    if (out.length !== n) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        `out has ${out.length} elements, needs ${n}${out.length < n ? " (too small)" : ""}`,
      );
    }
    if (out === send && !allowSame) {
      throw new ParallelError("INVALID_ARGUMENT", "out must be a different array than the input");
    }
    if (out !== send && overlaps(out, send)) {
      throw new ParallelError("INVALID_ARGUMENT", "out overlaps the input; pass a separate array");
    }
  }

  private checkOp(op: ReduceOp): void {
    if (!Object.hasOwn(OP_CODES, op)) {
      throw new ParallelError("INVALID_ARGUMENT", `op must be one of sum, max, min; got '${String(op)}'`);
    }
  }

  private dtypeIndex(x: unknown): DtypeName | null {
    try {
      return dtypeOf(x, "x");
    } catch {
      return null;
    }
  }

  private length(x: unknown): number {
    return ArrayBuffer.isView(x) ? (x as CollectiveArray).length : -1;
  }

  private prepAllReduce<T extends CollectiveArray>(buf: T, options: { op?: ReduceOp; out?: T }) {
    const op = options.op ?? "sum";
    const out = options.out ?? buf;
    const error = this.validate(() => {
      dtypeOf(buf, "buf");
      this.checkOp(op);
      this.checkOut(buf, out, buf.length, true);
    });
    if (!error) this.count("allReduce", buf);
    const sig = this.signature("allReduce", this.dtypeIndex(buf), this.length(buf), OP_CODES[op] ?? 0);
    return { op, out, error, sig };
  }

  allReduce<T extends CollectiveArray>(buf: T, options: { op?: ReduceOp; out?: T } = {}): Promise<T> {
    const { op, out, error, sig } = this.prepAllReduce(buf, options);
    return this.enqueue("allReduce", sig, error, async (check, where) => {
      if (this.size === 1) {
        if (out !== buf) out.set(buf);
      } else if (!(await this.transport.allReduce(buf, out, op, check))) this.refused(where, check);
      return out;
    });
  }

  allReduceSync<T extends CollectiveArray>(buf: T, options: { op?: ReduceOp; out?: T } = {}): T {
    this.guardBlocking("allReduce");
    const { op, out, error, sig } = this.prepAllReduce(buf, options);
    return this.runBlocking("allReduce", sig, error, (t, check, where) => {
      if (this.size === 1) {
        if (out !== buf) out.set(buf);
      } else if (!t.allReduce(buf, out, op, check)) this.refused(where, check);
      return out;
    });
  }

  reduceScatter<T extends CollectiveArray>(send: T, options: { op?: ReduceOp; out?: T } = {}): Promise<T> {
    const op = options.op ?? "sum";
    let out = options.out;
    const error = this.validate(() => {
      dtypeOf(send, "send");
      this.checkOp(op);
      if (send.length % this.size !== 0) {
        throw new ParallelError(
          "INVALID_ARGUMENT",
          `send has ${send.length} elements, not a multiple of the group size ${this.size} (pad it)`,
        );
      }
      this.checkOut(send, out, send.length / this.size, false);
      out ??= allocLike(send, send.length / this.size);
    });
    if (!error) this.count("reduceScatter", send);
    const sig = this.signature("reduceScatter", this.dtypeIndex(send), this.length(send), OP_CODES[op] ?? 0);
    return this.enqueue("reduceScatter", sig, error, async (check, where) => {
      const o = out!;
      if (this.size === 1) o.set(send);
      else if (!(await this.transport.reduceScatter(send, o, op, check))) this.refused(where, check);
      return o;
    });
  }

  private prepGather<T extends CollectiveArray>(
    kind: "allGather" | "allToAll",
    send: T,
    options: { out?: T },
  ): { out: T; error: string | null; sig: Int32Array } {
    let out = options.out;
    const error = this.validate(() => {
      dtypeOf(send, "send");
      if (kind === "allToAll" && send.length % this.size !== 0) {
        throw new ParallelError(
          "INVALID_ARGUMENT",
          `send has ${send.length} elements, not a multiple of the group size ${this.size}`,
        );
      }
      const n = kind === "allGather" ? send.length * this.size : send.length;
      this.checkOut(send, out, n, false);
      out ??= allocLike(send, n);
    });
    if (!error) this.count(kind, send);
    const sig = this.signature(kind, this.dtypeIndex(send), this.length(send), 0);
    return { out: out as T, error, sig };
  }

  allGather<T extends CollectiveArray>(send: T, options: { out?: T } = {}): Promise<T> {
    const { out, error, sig } = this.prepGather("allGather", send, options);
    return this.enqueue("allGather", sig, error, async (check, where) => {
      if (this.size === 1) out.set(send);
      else if (!(await this.transport.allGather(send, out, check))) this.refused(where, check);
      return out;
    });
  }

  allGatherSync<T extends CollectiveArray>(send: T, options: { out?: T } = {}): T {
    this.guardBlocking("allGather");
    const { out, error, sig } = this.prepGather("allGather", send, options);
    return this.runBlocking("allGather", sig, error, (t, check, where) => {
      if (this.size === 1) out.set(send);
      else if (!t.allGather(send, out, check)) this.refused(where, check);
      return out;
    });
  }

  allToAll<T extends CollectiveArray>(send: T, options: { out?: T } = {}): Promise<T> {
    const { out, error, sig } = this.prepGather("allToAll", send, options);
    return this.enqueue("allToAll", sig, error, async (check, where) => {
      if (this.size === 1) out.set(send);
      else if (!(await this.transport.allToAll(send, out, check))) this.refused(where, check);
      return out;
    });
  }

  allToAllSync<T extends CollectiveArray>(send: T, options: { out?: T } = {}): T {
    this.guardBlocking("allToAll");
    const { out, error, sig } = this.prepGather("allToAll", send, options);
    return this.runBlocking("allToAll", sig, error, (t, check, where) => {
      if (this.size === 1) out.set(send);
      else if (!t.allToAll(send, out, check)) this.refused(where, check);
      return out;
    });
  }

  private prepAllToAllV<T extends CollectiveArray>(
    send: T,
    layout: {
      sendCounts: Int32Array | readonly number[];
      recvCounts?: Int32Array | readonly number[];
      out?: T;
    },
  ) {
    let sendCounts: Int32Array = new Int32Array(this.size);
    let given: Int32Array | null = null;
    const error = this.validate(() => {
      dtypeOf(send, "send");
      sendCounts = toInt32(layout.sendCounts, "sendCounts", this.size);
      if (sum(sendCounts) !== send.length) {
        throw new ParallelError(
          "INVALID_ARGUMENT",
          `sendCounts add up to ${sum(sendCounts)} but send has ${send.length} elements`,
        );
      }
      if (layout.recvCounts !== undefined) given = toInt32(layout.recvCounts, "recvCounts", this.size);
      if (layout.out !== undefined && dtypeOf(layout.out, "out") !== dtypeOf(send, "send")) {
        throw new ParallelError("INVALID_ARGUMENT", `out must be a ${send.constructor.name} like send`);
      }
      if (layout.out !== undefined && overlaps(layout.out, send)) {
        throw new ParallelError("INVALID_ARGUMENT", "out overlaps send; pass a separate array");
      }
    });
    if (!error) this.count("allToAllV", send);
    // Lengths legitimately differ across ranks; only kind and type are compared
    // here, and the counts against what peers really send (resolve).
    const dt = this.dtypeIndex(send);
    const sig = this.signature("allToAllV", dt, 0, 0);
    return { sendCounts, given: given as Int32Array | null, error, sig, dt };
  }

  /**
   * The receive side of allToAllV: the counts peers send (exchanged unless
   * given and checks are off), checked against `given` and `out`. Returns the
   * local problem, if any, for the cross-rank agreement.
   */
  private recvLayout<T extends CollectiveArray>(
    recvCounts: Int32Array,
    given: Int32Array | null,
    out: T | undefined,
  ): string | null {
    const outLen = sum(recvCounts);
    let local: string | null = null;
    if (given) {
      const wrong = [...given.keys()].filter((i) => given[i] !== recvCounts[i]);
      if (wrong.length > 0) {
        local =
          "recvCounts disagree with what the ranks send: " +
          wrong.map((i) => `from rank ${i} expected ${given[i]}, it sends ${recvCounts[i]}`).join("; ");
      }
    }
    if (out !== undefined && out.length !== outLen) {
      local ??= `out has ${out.length} elements, needs ${outLen}${out.length < outLen ? " (too small)" : ""}`;
    }
    return local;
  }

  allToAllV<T extends CollectiveArray>(
    send: T,
    layout: {
      sendCounts: Int32Array | readonly number[];
      recvCounts?: Int32Array | readonly number[];
      out?: T;
    },
  ): Promise<{ data: T; recvCounts: Int32Array }> {
    const { sendCounts, given, error, sig, dt } = this.prepAllToAllV(send, layout);
    return this.enqueue(
      "allToAllV",
      sig,
      error,
      async (_check, where) => {
        let recvCounts: Int32Array;
        if (this.size === 1) recvCounts = sendCounts.slice();
        else if (given && !this.checks) recvCounts = given;
        else {
          recvCounts = new Int32Array(this.size);
          await this.transport.allToAll(sendCounts, recvCounts);
        }
        const local = this.recvLayout(recvCounts, given, layout.out);
        if (this.checks && this.size > 1)
          await this.agree(where, this.signature("allToAllV", dt, 0, 0), local);
        else if (local) throw new ParallelError("INVALID_ARGUMENT", `${where}: ${local}`);
        const out = layout.out ?? allocLike(send, sum(recvCounts));
        if (this.size === 1) out.set(send);
        else {
          await this.transport.allToAllV(
            send,
            sendCounts,
            prefix(sendCounts),
            out,
            recvCounts,
            prefix(recvCounts),
          );
        }
        return { data: out, recvCounts };
      },
      { fused: false },
    );
  }

  allToAllVSync<T extends CollectiveArray>(
    send: T,
    layout: {
      sendCounts: Int32Array | readonly number[];
      recvCounts?: Int32Array | readonly number[];
      out?: T;
    },
  ): { data: T; recvCounts: Int32Array } {
    this.guardBlocking("allToAllV");
    const { sendCounts, given, error, sig, dt } = this.prepAllToAllV(send, layout);
    return this.runBlocking(
      "allToAllV",
      sig,
      error,
      (t, _check, where) => {
        let recvCounts: Int32Array;
        if (this.size === 1) recvCounts = sendCounts.slice();
        else if (given && !this.checks) recvCounts = given;
        else {
          recvCounts = new Int32Array(this.size);
          t.allToAll(sendCounts, recvCounts);
        }
        const local = this.recvLayout(recvCounts, given, layout.out);
        if (this.checks && this.size > 1) this.agreeSync(where, this.signature("allToAllV", dt, 0, 0), local);
        else if (local) throw new ParallelError("INVALID_ARGUMENT", `${where}: ${local}`);
        const out = layout.out ?? allocLike(send, sum(recvCounts));
        if (this.size === 1) out.set(send);
        else t.allToAllV(send, sendCounts, prefix(sendCounts), out, recvCounts, prefix(recvCounts));
        return { data: out, recvCounts };
      },
      { fused: false },
    );
  }

  broadcast<T extends CollectiveArray>(buf: T, options: { root?: number } = {}): Promise<T> {
    const root = options.root ?? 0;
    const error = this.validate(() => {
      dtypeOf(buf, "buf");
      if (!Number.isInteger(root) || root < 0 || root >= this.size) {
        throw new ParallelError(
          "INVALID_ARGUMENT",
          `root ${root} is not a rank of this group (0..${this.size - 1})`,
        );
      }
    });
    if (!error) this.count("broadcast", buf);
    const sig = this.signature(
      "broadcast",
      this.dtypeIndex(buf),
      this.length(buf),
      Number.isInteger(root) ? root : -1,
    );
    return this.enqueue("broadcast", sig, error, async (check, where) => {
      if (this.size > 1 && !(await this.transport.broadcast(buf, root, check))) this.refused(where, check);
      return buf;
    });
  }

  barrier(): Promise<void> {
    this.count("barrier");
    const sig = this.signature("barrier", null, 0, 0);
    return this.enqueue("barrier", sig, null, async (check, where) => {
      if (this.size > 1 && !(await this.transport.barrier(check))) this.refused(where, check);
    });
  }

  split(options: { color: number | null; key?: number; name?: string }): Promise<Communicator | null> {
    const { color } = options;
    const key = options.key ?? this.rank;
    const error = this.validate(() => {
      if (color !== null && (!Number.isInteger(color) || color < 0 || color > 0x7fffffff)) {
        throw new ParallelError(
          "INVALID_ARGUMENT",
          `color must be a non-negative integer or null, got ${color}`,
        );
      }
      if (!Number.isInteger(key) || Math.abs(key) > 0x7fffffff) {
        throw new ParallelError("INVALID_ARGUMENT", `key must be a 32-bit integer, got ${key}`);
      }
    });
    this.count("split");
    const sig = this.signature("split", null, 0, 0);
    const name = `${this.name}/${options.name ?? `split${this.counts.split.calls}`}`;
    return this.enqueue(
      "split",
      sig,
      error,
      async () => {
        const t = await this.transport.split(color, key);
        return t ? new Comm(t, name, { checks: this.checks }) : null;
      },
      { fused: false },
    );
  }
}
