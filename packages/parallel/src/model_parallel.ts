// Expert parallelism and tensor slicing inside the model: the hooks a
// Transformer's MoE layers call during their forward pass (synchronously,
// inside tf.tidy / tf.variableGrads), implemented with the communicators'
// blocking collectives and differentiable through tf.customGrad.
//
// Legend: (e) global expert, (l) local expert, (r) rank of the expert-parallel
// group, (c) capacity slot, (m) model dim. W ranks, El = E / W local experts.
//
// Shape trace of one MoE layer (only filled slots travel):
//
// | step               | tensor                | rows sent per (e, rank)  | sharded along ep           |
// | ------------------ | --------------------- | ------------------------ | -------------------------- |
// | dispatch (local)   | dispatchedECM [E,C,M] |                          | tokens: this rank's batch  |
// | counts allToAll    | <int32>[W, 1 + El]    | C and counts of each e   |                            |
// | toExperts          | [El, W*Cmax, M]       | countsE[e] (not C)       | experts; padding after the |
// |                    |                       |                          | valid rows of each block   |
// | experts (local)    | [El, W*Cmax, M]       |                          | experts                    |
// | fromExperts        | combinedECM [E,C,M]   | the same counts back     | tokens (unfilled slots 0)  |
//
// Backward: the gradient of toExperts is fromExperts with the same counts, and
// vice versa (each moves the same rows the other way; rows that were not sent
// get zero gradient — combine never reads them and dispatch never wrote them).
//
// Tensor slicing (Megatron): enter() is the identity forward and an allReduce
// of the gradient backward; reduce() is an allReduce forward and the identity
// backward.
import type { ExchangedTokens, ExpertExchange, ExpertExchangeFactory, ExpertSlicing } from "@polymoe/model";
import {
  clone,
  customGrad,
  type GradSaveFunc,
  type Tensor,
  type Tensor3D,
  tensor,
  tensor3d,
} from "@tensorflow/tfjs-core";

import type { Communicator } from "./communicator.js";
import { ParallelError } from "./errors.js";
import { commBuffer } from "./mpi.js";

/**
 * A differentiable op from a forward and its adjoint (tf.customGrad), built
 * per call so both can close over the call's plan.
 */
function differentiable(
  forward: (x: Tensor) => Tensor,
  adjoint: (dy: Tensor) => Tensor,
): (x: Tensor) => Tensor {
  const op = customGrad((...inputs: (Tensor | GradSaveFunc)[]) => ({
    value: forward(inputs[0] as Tensor),
    gradFunc: (dy: Tensor) => adjoint(dy),
  }));
  return (x) => op(x);
}

/** Blocking collectives of one kind made inside forward/backward passes. */
export interface CommTime {
  calls: number;
  /** Wall time inside the collectives (waiting for peers included). */
  ms: number;
  /** Bytes this rank sent. */
  bytes: number;
}

/** Where a model's in-step communication time went, since the last reset. */
export interface ModelCommStats {
  /** MoE token exchange (counts and rows), forward and backward. */
  allToAll: CommTime;
  /** Tensor-parallel reductions of sliced expert FFNs, forward and backward. */
  tensorParallel: CommTime;
}

const zeroTime = (): CommTime => ({ calls: 0, ms: 0, bytes: 0 });

/** A shared, resettable record of in-step communication. */
export class CommClock {
  private s: ModelCommStats = { allToAll: zeroTime(), tensorParallel: zeroTime() };

  /** Runs `f` (one blocking collective), adding its time and `bytes` to `kind`. */
  time<R>(kind: keyof ModelCommStats, bytes: number, f: () => R): R {
    const t0 = performance.now();
    try {
      return f();
    } finally {
      const c = this.s[kind];
      c.calls++;
      c.ms += performance.now() - t0;
      c.bytes += bytes;
    }
  }

  stats(): ModelCommStats {
    return structuredClone(this.s);
  }

  reset(): void {
    this.s = { allToAll: zeroTime(), tensorParallel: zeroTime() };
  }
}

/** What the backward pass (and fromExperts) needs to know of a toExperts call. */
interface Plan {
  E: number;
  C: number;
  M: number;
  W: number;
  El: number;
  /** The largest capacity of the group: rows per (expert, source) block on the receiving side. */
  Cmax: number;
  /** <int32>[E] rows this rank sent to each global expert. */
  countsE: Int32Array;
  /** <int32>[El, W] rows each source rank sent to each local expert. */
  countsLW: Int32Array;
}

/** A reusable scratch buffer that grows to the largest size asked for. */
class Scratch {
  private buf: Float32Array = new Float32Array(0);
  get(n: number): Float32Array {
    if (this.buf.length < n) this.buf = commBuffer(Math.max(n, Math.ceil(this.buf.length * 1.5)));
    return this.buf.subarray(0, n);
  }
}

/**
 * The MoE token exchange of one layer over the expert-parallel group `ep`
 * (see the file comment). Rank r holds global experts [r El, (r+1) El).
 */
export class CommExpertExchange implements ExpertExchange {
  readonly worldSize: number;
  readonly firstExpert: number;
  private readonly el: number;
  private readonly plans = new WeakMap<ExchangedTokens, Plan>();
  private readonly send = new Scratch();
  private readonly recv = new Scratch();

  constructor(
    private readonly ep: Communicator,
    readonly numExperts: number,
    private readonly clock: CommClock = new CommClock(),
  ) {
    if (!Number.isInteger(numExperts) || numExperts < 1 || numExperts % ep.size !== 0) {
      throw new ParallelError(
        "INVALID_LAYOUT",
        `an MoE layer with ${numExperts} experts cannot be split over an expert-parallel group of ${ep.size} ranks ` +
          "(numExperts must be a multiple of ep)",
      );
    }
    this.worldSize = ep.size;
    this.el = numExperts / ep.size;
    this.firstExpert = ep.rank * this.el;
  }

  toExperts(buf: Tensor3D, countsE?: Int32Array): ExchangedTokens {
    const [E, C, M] = buf.shape;
    if (E !== this.numExperts) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        `toExperts: the dispatch buffer has ${E} experts, this layer's exchange was built for ${this.numExperts}`,
      );
    }
    const counts = countsE ?? new Int32Array(E).fill(C);
    if (counts.length !== E) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        `toExperts: countsE has ${counts.length} entries, expected ${E}`,
      );
    }
    counts.forEach((n, e) => {
      if (!(n >= 0 && n <= C)) {
        throw new ParallelError("INVALID_ARGUMENT", `toExperts: countsE[${e}] = ${n} is outside [0, ${C}]`);
      }
    });
    if (this.worldSize === 1) return { buf, counts: counts.slice() };
    const plan = this.planFor(C, M, counts);
    const exchange = differentiable(
      (x) => this.toRanks(x, plan),
      (dy) => this.fromRanks(dy, plan),
    );
    const sent: ExchangedTokens = { buf: exchange(buf) as Tensor3D, counts: plan.countsLW.slice() };
    this.plans.set(sent, plan);
    return sent;
  }

  fromExperts(out: Tensor3D, sent: ExchangedTokens): Tensor3D {
    if (this.worldSize === 1) return out;
    const plan = this.plans.get(sent);
    if (!plan) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        "fromExperts: `sent` must be what this exchange's toExperts returned for the same layer call",
      );
    }
    const want = [plan.El, plan.W * plan.Cmax, plan.M];
    if (out.shape.join() !== want.join()) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        `fromExperts: the experts' output is [${out.shape}], expected [${want}] (the shape toExperts delivered)`,
      );
    }
    const exchange = differentiable(
      (y) => this.fromRanks(y, plan),
      (dz) => this.toRanks(dz, plan),
    );
    return exchange(out) as Tensor3D;
  }

  /** <float32>[E, C, M] on every rank -> <float32>[El, W * Cmax, M] on the experts' ranks. */
  private toRanks(x: Tensor, p: Plan): Tensor3D {
    return tensor3d(this.forward(x.dataSync() as Float32Array, p), [p.El, p.W * p.Cmax, p.M]);
  }

  /** <float32>[El, W * Cmax, M] -> <float32>[E, C, M] back on the source ranks. */
  private fromRanks(y: Tensor, p: Plan): Tensor3D {
    return tensor3d(this.backward(y.dataSync() as Float32Array, p), [p.E, p.C, p.M]);
  }

  /** Exchanges capacities and counts: one blocking allToAll of <int32>[W, 1 + El]. */
  private planFor(C: number, M: number, countsE: Int32Array): Plan {
    const { worldSize: W, el: El } = this;
    const header = new Int32Array(W * (1 + El));
    for (let j = 0; j < W; j++) {
      header[j * (1 + El)] = C;
      header.set(countsE.subarray(j * El, (j + 1) * El), j * (1 + El) + 1);
    }
    const got = this.clock.time("allToAll", header.byteLength, () => this.ep.allToAllSync(header));
    let Cmax = 0;
    const countsLW = new Int32Array(El * W);
    for (let i = 0; i < W; i++) {
      Cmax = Math.max(Cmax, got[i * (1 + El)]!);
      for (let l = 0; l < El; l++) countsLW[l * W + i] = got[i * (1 + El) + 1 + l]!;
    }
    return { E: this.numExperts, C, M, W, El, Cmax, countsE: countsE.slice(), countsLW };
  }

  /** [E, C, M] (rows countsE[e] of each expert) -> [El, W, Cmax, M] on the experts' ranks. */
  private forward(x: Float32Array, p: Plan): Float32Array {
    const { W, El, C, M, Cmax } = p;
    let total = 0;
    for (const n of p.countsE) total += n;
    const send = this.send.get(total * M);
    const sendCounts = new Int32Array(W);
    let at = 0;
    for (let j = 0; j < W; j++) {
      for (let l = 0; l < El; l++) {
        const e = j * El + l;
        const n = p.countsE[e]! * M;
        send.set(x.subarray(e * C * M, e * C * M + n), at);
        at += n;
        sendCounts[j]! += n;
      }
    }
    const recvCounts = new Int32Array(W);
    for (let l = 0; l < El; l++) for (let i = 0; i < W; i++) recvCounts[i]! += p.countsLW[l * W + i]! * M;
    let recvTotal = 0;
    for (const n of recvCounts) recvTotal += n;
    const recv = this.recv.get(recvTotal);
    this.clock.time("allToAll", send.byteLength, () =>
      this.ep.allToAllVSync(send, { sendCounts, recvCounts, out: recv }),
    );
    const out = new Float32Array(El * W * Cmax * M);
    at = 0;
    for (let i = 0; i < W; i++) {
      for (let l = 0; l < El; l++) {
        const n = p.countsLW[l * W + i]! * M;
        out.set(recv.subarray(at, at + n), (l * W + i) * Cmax * M);
        at += n;
      }
    }
    return out;
  }

  /** [El, W, Cmax, M] (valid rows of each block) -> [E, C, M] back on the source ranks. */
  private backward(y: Float32Array, p: Plan): Float32Array {
    const { W, El, C, M, Cmax } = p;
    let total = 0;
    for (const n of p.countsLW) total += n;
    const send = this.send.get(total * M);
    const sendCounts = new Int32Array(W);
    let at = 0;
    for (let i = 0; i < W; i++) {
      for (let l = 0; l < El; l++) {
        const n = p.countsLW[l * W + i]! * M;
        const from = (l * W + i) * Cmax * M;
        send.set(y.subarray(from, from + n), at);
        at += n;
        sendCounts[i]! += n;
      }
    }
    const recvCounts = new Int32Array(W);
    for (let e = 0; e < p.E; e++) recvCounts[Math.floor(e / El)]! += p.countsE[e]! * M;
    let recvTotal = 0;
    for (const n of recvCounts) recvTotal += n;
    const recv = this.recv.get(recvTotal);
    this.clock.time("allToAll", send.byteLength, () =>
      this.ep.allToAllVSync(send, { sendCounts, recvCounts, out: recv }),
    );
    const out = new Float32Array(p.E * C * M);
    at = 0;
    for (let e = 0; e < p.E; e++) {
      const n = p.countsE[e]! * M;
      out.set(recv.subarray(at, at + n), e * C * M);
      at += n;
    }
    return out;
  }
}

/** Tensor slicing over the tensor-parallel group `tp` (see the file comment). */
export class CommExpertSlicing implements ExpertSlicing {
  readonly size: number;
  readonly rank: number;

  constructor(
    private readonly tp: Communicator,
    private readonly clock: CommClock = new CommClock(),
  ) {
    this.size = tp.size;
    this.rank = tp.rank;
  }

  private sum(t: Tensor): Tensor {
    const values = t.dataSync() as Float32Array;
    const out = new Float32Array(values.length);
    this.clock.time("tensorParallel", values.byteLength, () => this.tp.allReduceSync(values, { out }));
    return tensor(out, t.shape);
  }

  enter<T extends Tensor>(x: T): T {
    if (this.size === 1) return x;
    return differentiable(clone, (dy) => this.sum(dy))(x) as T;
  }

  reduce<T extends Tensor>(y: T): T {
    if (this.size === 1) return y;
    return differentiable((a) => this.sum(a), clone)(y) as T;
  }
}

/** The model hooks of one rank: an exchange per MoE layer, the slicing, and their timing. */
export interface ModelParallelHooks {
  /** Pass as TransformerInit.exchange. */
  exchange: ExpertExchangeFactory;
  /** Pass as TransformerInit.slicing (undefined without tensor slicing). */
  slicing?: ExpertSlicing;
  clock: CommClock;
}

/**
 * The hooks a Transformer needs to run expert-parallel over `groups.ep` and
 * tensor-sliced over `groups.tp`. Every rank of the job must build its model
 * with them and run the same forward/backward passes (the hooks are blocking
 * collectives).
 */
export function modelParallelHooks(groups: { ep: Communicator; tp: Communicator }): ModelParallelHooks {
  const clock = new CommClock();
  const hooks: ModelParallelHooks = {
    exchange: ({ numExperts }) => new CommExpertExchange(groups.ep, numExperts, clock),
    clock,
  };
  if (groups.tp.size > 1) hooks.slicing = new CommExpertSlicing(groups.tp, clock);
  return hooks;
}
