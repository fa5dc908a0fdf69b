// Paged experts (ZeRO-Infinity adapted to MoE): the parameters, gradients and
// Adam moments of every expert live in a TieredStore (host memory under a
// budget, then one file per expert on disk), never as resident tfjs
// variables. A forward fetches only the experts the batch routed tokens to
// (task routing: known from the task ids; token routing: after the router)
// as compact tensors; the backward hands their gradients back here, where
// they are summed on the host; the update pages each routed expert's
// parameters and moments in, runs the fused native CPU Adam over them and
// writes them back (atomically, on eviction), and the compact tensors are
// released. Experts no batch routed to are left alone (lazy Adam, as
// offload.experts "routed" does for resident experts).
//
// Axis legend: E experts of a layer, A experts fetched, M model width,
// F expert hidden width.
import path from "node:path";

import { adamStep, experimental_nativeValues as nativeValues } from "@polymoe/kernels";
import type { ExpertPager, PagedLayerSpec, PagedWeights } from "@polymoe/model";
import { parseConfig } from "@polymoe/schema";
import {
  scalar,
  type Tensor,
  type Tensor2D,
  type Tensor3D,
  tensor2d,
  tensor3d,
  type Variable,
  variable,
} from "@tensorflow/tfjs-core";

import type { OffloadAdamHyper } from "./adam.js";
import { OffloadConfig, type OffloadConfigInput } from "./config.js";
import { gb, OffloadError } from "./errors.js";
import { freeBytes } from "./files.js";
import { adamStepOpsOrder } from "./ops_order.js";
import { type StoreStats, TieredStore } from "./store.js";

export interface PagedExpertsOptions {
  /** Directory of the expert files (created if missing; stale files of an earlier run are removed). */
  dir: string;
  /** Host bytes the store may cache (parameters and moments of recently used experts). */
  cacheBytes: number;
  /** fsync each file before its rename (default true). */
  fsync?: boolean;
  /** Prefix of the anchor variable's tfjs name (unique per pager in a process). Default "paged". */
  namespace?: string;
  /**
   * eager (default): every expert's initial parameters are written to the store when its layer
   * registers; first-use: an expert's are drawn (from the same per-expert seed, so the values are the
   * same) when a batch first routes to it, or a checkpoint first reads it.
   */
  init?: "eager" | "first-use";
  /**
   * Write evicted experts from a background thread while the step computes
   * (TieredStoreOptions.asyncWriteBack). Default false: on the 2-core machine
   * of docs/benchmarks.md it did not shorten steps and held ~50 MB more.
   */
  asyncWriteBack?: boolean;
}

/** What one update moved. */
export interface PagedStepStats extends StoreStats {
  /** Experts updated in this step (summed over layers). */
  expertsUpdated: number;
  /** Experts fetched by forward passes since the last update. */
  expertsFetched: number;
}

/** The parts of one expert, in the order they sit in its parameter entry. */
const PARTS = ["w1", "b1", "w2", "b2"] as const;
type Part = (typeof PARTS)[number];

interface LayerInfo {
  spec: PagedLayerSpec;
  /** Offset and length of each part inside an expert's entry (length 0: no such part). */
  parts: Record<Part, { offset: number; len: number }>;
  /** Floats per expert. */
  length: number;
  /** Expert -> host gradient summed over this step's backward passes. */
  grads: Map<number, Float32Array>;
}

interface Fetch {
  layer: string;
  /** The experts as a comma-joined string (to find a fetch of the same set). */
  key: string;
  experts: Int32Array;
  weights: PagedWeights;
}

export class PagedExperts implements ExpertPager {
  readonly anchor: Variable;
  readonly store: TieredStore;
  /** Updates applied so far (the Adam step of bias correction). */
  step = 0;
  private readonly layers = new Map<string, LayerInfo>();
  private fetches: Fetch[] = [];
  /** The fetch each gradient sink belongs to, found by its tensors. */
  private readonly owner = new Map<Tensor, { fetch: Fetch; part: Part }>();
  private fetched = 0;
  private last: PagedStepStats | null = null;
  private totalParams = 0;

  constructor(private readonly opts: PagedExpertsOptions) {
    if (!(opts.cacheBytes > 0) || !Number.isFinite(opts.cacheBytes)) {
      throw new OffloadError(
        "INVALID_ARGUMENT",
        `PagedExperts: cacheBytes must be a positive number of bytes, got ${opts.cacheBytes}`,
      );
    }
    this.store = new TieredStore({
      dir: opts.dir,
      hostBytes: opts.cacheBytes,
      fsync: opts.fsync ?? true,
      budgetName: "offload.expertCacheGB",
      asyncWriteBack: opts.asyncWriteBack ?? false,
    });
    this.anchor = variable(scalar(0), true, `${opts.namespace ?? "paged"}.pager.anchor`);
  }

  /** The pager of train.offload (experts: "paged"): files in <dir>/experts, cache offload.expertCacheGB. */
  static fromConfig(offload: OffloadConfigInput, namespace?: string): PagedExperts {
    const c = parseConfig(OffloadConfig, offload, { prefix: "offload" });
    return new PagedExperts({
      dir: pagedDir(c.dir),
      cacheBytes: c.expertCacheGB * 2 ** 30,
      fsync: c.fsync,
      init: c.expertInit,
      ...(namespace ? { namespace } : {}),
    });
  }

  /** Parameters held here (all layers, all experts). */
  numParameters(): number {
    return this.totalParams;
  }

  /** The registered layers' names. */
  layerNames(): string[] {
    return [...this.layers.keys()];
  }

  /** Each layer's expert count and the shape of each part of one expert (w1 [M, F], b1 [F], w2 [F, M], b2 [M]). */
  layout(): { name: string; numExperts: number; parts: { part: Part; shape: number[] }[] }[] {
    return [...this.layers.values()].map(({ spec }) => {
      const { dModel: M, dFF: F } = spec;
      const shapes: Record<Part, number[]> = { w1: [M, F], b1: [F], w2: [F, M], b2: [M] };
      return {
        name: spec.name,
        numExperts: spec.numExperts,
        parts: PARTS.filter((p) => spec.bias || p === "w1" || p === "w2").map((part) => ({
          part,
          shape: shapes[part],
        })),
      };
    });
  }

  /**
   * Replaces expert e of `layer` (a checkpoint's values): parameters by part,
   * and moments (null: none yet, as for an expert never updated). Missing or
   * misshapen parts are errors naming them.
   */
  load(
    layer: string,
    e: number,
    params: Record<string, Float32Array>,
    m: Record<string, Float32Array> | null,
    v: Record<string, Float32Array> | null,
  ): void {
    const info = this.need(layer);
    if (!(e >= 0 && e < info.spec.numExperts)) {
      throw new OffloadError("STATE_MISMATCH", `${layer} has ${info.spec.numExperts} experts, not ${e + 1}`);
    }
    const pack = (src: Record<string, Float32Array>, what: string, out: Float32Array, base: number) => {
      for (const p of PARTS) {
        const { offset, len } = info.parts[p];
        if (len === 0) continue;
        const a = src[p];
        if (!a || a.length !== len) {
          throw new OffloadError(
            "STATE_MISMATCH",
            `${what} of ${layer} expert ${e}: part ${p} has ${a?.length ?? "no"} values, expected ${len}`,
          );
        }
        out.set(a, base + offset);
      }
    };
    const pv = new Float32Array(info.length);
    pack(params, "parameters", pv, 0);
    this.store.create(paramKey(layer, e), info.length, pv);
    const sk = stateKey(layer, e);
    if (m && v) {
      const sv = new Float32Array(2 * info.length);
      pack(m, "first moment", sv, 0);
      pack(v, "second moment", sv, info.length);
      this.store.create(sk, 2 * info.length, sv);
    } else {
      this.store.drop(sk);
    }
  }

  register(spec: PagedLayerSpec): void {
    if (this.layers.has(spec.name)) {
      throw new OffloadError(
        "INVALID_ARGUMENT",
        `PagedExperts: layer ${spec.name} is registered twice; give each model its own pager`,
      );
    }
    const { dModel: M, dFF: F } = spec;
    const b = spec.bias ? 1 : 0;
    const lens: Record<Part, number> = { w1: M * F, b1: b * F, w2: F * M, b2: b * M };
    let off = 0;
    const parts = {} as Record<Part, { offset: number; len: number }>;
    for (const p of PARTS) {
      parts[p] = { offset: off, len: lens[p] };
      off += lens[p];
    }
    const info: LayerInfo = { spec, parts, length: off, grads: new Map() };
    const bytes = spec.numExperts * off * 4;
    const spill = bytes - this.store.hostBytes;
    const free = freeBytes(this.opts.dir);
    const eager = (this.opts.init ?? "eager") === "eager";
    if (eager && spill > 0 && free < spill) {
      throw new OffloadError(
        "DISK_FULL",
        `offload.dir ${this.opts.dir} has ${gb(free)} free but the experts of ${spec.name} need ${gb(spill)} ` +
          `there (${spec.numExperts} experts of ${gb(off * 4)}); free space or point offload.dir at a larger disk`,
      );
    }
    this.layers.set(spec.name, info);
    this.totalParams += spec.numExperts * off;
    // Parameters go to the store now (to disk once the cache is full), or on
    // first use; moments are created on an expert's first update (zeros cost nothing).
    if (eager) for (let e = 0; e < spec.numExperts; e++) this.materialize(info, e);
  }

  /** The initial parameters of expert e of a layer. */
  private initial(info: LayerInfo, e: number): Float32Array {
    const w = info.spec.init(e);
    const out = new Float32Array(info.length);
    out.set(w.w1, info.parts.w1.offset);
    out.set(w.w2, info.parts.w2.offset);
    return out;
  }

  /** Puts expert e's initial parameters into the store unless it holds them. */
  private materialize(info: LayerInfo, e: number): void {
    const key = paramKey(info.spec.name, e);
    if (!this.store.has(key)) this.store.create(key, info.length, this.initial(info, e));
  }

  fetch(layer: string, experts: Int32Array): PagedWeights {
    const info = this.need(layer);
    const { dModel: M, dFF: F, numExperts: E } = info.spec;
    const A = experts.length;
    for (let i = 0; i < A; i++) {
      const e = experts[i] as number;
      if (!(e >= 0 && e < E) || (i > 0 && e <= (experts[i - 1] as number))) {
        throw new OffloadError(
          "INVALID_ARGUMENT",
          `PagedExperts.fetch(${layer}): experts must be ascending ids in [0, ${E}), got [${experts}]`,
        );
      }
    }
    // The same experts of the same layer again before the step ends (gradient
    // accumulation, or decoding step by step): the tensors already fetched serve
    // (gradients through them add up), so memory is bounded by the distinct sets.
    const key = experts.join();
    const same = this.fetches.find((f) => f.layer === layer && f.key === key);
    if (same) return same.weights;
    const host: Record<Part, Float32Array> = {
      w1: new Float32Array(A * info.parts.w1.len),
      b1: new Float32Array(A * info.parts.b1.len),
      w2: new Float32Array(A * info.parts.w2.len),
      b2: new Float32Array(A * info.parts.b2.len),
    };
    for (let i = 0; i < A; i++) {
      const key = paramKey(layer, experts[i] as number);
      this.materialize(info, experts[i] as number);
      const entry = this.store.acquire(key);
      for (const p of PARTS) {
        const { offset, len } = info.parts[p];
        if (len > 0) host[p].set(entry.subarray(offset, offset + len), i * len);
      }
      this.store.release(key, false);
    }
    const weights: PagedWeights = {
      w1: tensor3d(host.w1, [A, M, F], "float32"),
      w2: tensor3d(host.w2, [A, F, M], "float32"),
      b1: info.spec.bias ? tensor2d(host.b1, [A, F], "float32") : null,
      b2: info.spec.bias ? tensor2d(host.b2, [A, M], "float32") : null,
    };
    // Owned here until the step ends, whatever tidy the forward runs in.
    const fetch: Fetch = { layer, key, experts: Int32Array.from(experts), weights };
    for (const p of PARTS) {
      const t = weights[p];
      if (!t) continue;
      t.kept = true;
      this.owner.set(t, { fetch, part: p });
    }
    this.fetches.push(fetch);
    this.fetched += A;
    return weights;
  }

  accumulate(fetched: Tensor2D | Tensor3D, grad: Tensor2D | Tensor3D): void {
    const own = this.owner.get(fetched);
    if (!own) {
      throw new OffloadError(
        "INVALID_ARGUMENT",
        "PagedExperts.accumulate: the tensor is not one this pager fetched in the current step " +
          "(release() ran between the forward and the backward?)",
      );
    }
    const info = this.need(own.fetch.layer);
    const { offset, len } = info.parts[own.part];
    const values = nativeValues(grad) ?? (grad.dataSync() as Float32Array);
    const { experts } = own.fetch;
    for (let i = 0; i < experts.length; i++) {
      const e = experts[i] as number;
      let g = info.grads.get(e);
      if (!g) {
        g = new Float32Array(info.length);
        info.grads.set(e, g);
      }
      const dst = g.subarray(offset, offset + len);
      const src = values.subarray(i * len, (i + 1) * len);
      for (let j = 0; j < len; j++) dst[j] = (dst[j] as number) + (src[j] as number);
    }
  }

  /** The sum of squares of this step's expert gradients (for the global gradient norm). */
  gradSquares(): number {
    let total = 0;
    for (const info of this.layers.values()) {
      for (const g of info.grads.values()) {
        for (let j = 0; j < g.length; j++) total += (g[j] as number) * (g[j] as number);
      }
    }
    return total;
  }

  /**
   * One Adam/AdamW update of every expert that received a gradient this step
   * (gradients multiplied by gradScale, weight decay per parameter name by
   * `decayOf`), then release(). Native backend: the fused kernel; elsewhere
   * the tfjs-ops order of @polymoe/train's AdamW (bitwise on cpu).
   */
  apply(optimizer: OffloadAdamHyper, lr: number, gradScale: number, decayOf: (name: string) => number): void {
    const [beta1, beta2] = optimizer.betas;
    const decoupled = optimizer.type === "adamw";
    const native = nativeValues(this.anchor) !== null;
    this.step++;
    this.store.resetStats();
    let updated = 0;
    for (const [layer, info] of this.layers) {
      const experts = [...info.grads.keys()].sort((a, b) => a - b);
      for (const e of experts) {
        const grad = info.grads.get(e) as Float32Array;
        const pk = paramKey(layer, e);
        const sk = stateKey(layer, e);
        if (!this.store.has(sk)) this.store.create(sk, 2 * info.length);
        const state = this.store.acquire(sk);
        const params = this.store.acquire(pk);
        for (const p of PARTS) {
          const { offset, len } = info.parts[p];
          if (len === 0) continue;
          const hyper = {
            lr,
            beta1,
            beta2,
            eps: optimizer.eps,
            weightDecay: decayOf(`${layer}.${p}`),
            decoupled,
            step: this.step,
            gradScale,
          };
          const arrays = {
            param: params.subarray(offset, offset + len),
            grad: grad.subarray(offset, offset + len),
            m: state.subarray(offset, offset + len),
            v: state.subarray(info.length + offset, info.length + offset + len),
          };
          if (native) adamStep(arrays, hyper);
          else adamStepOpsOrder(arrays.param, arrays.grad, arrays.m, arrays.v, hyper);
        }
        this.store.release(pk, true);
        this.store.release(sk, true);
        updated++;
      }
    }
    this.last = { ...this.store.stats(), expertsUpdated: updated, expertsFetched: this.fetched };
    this.release();
  }

  /** Drops this step's fetched tensors and gradients without updating (also after evaluation forwards). */
  release(): void {
    for (const f of this.fetches) {
      for (const p of PARTS) {
        const t = f.weights[p];
        if (!t) continue;
        t.kept = false;
        this.owner.delete(t);
        t.dispose();
      }
    }
    this.fetches = [];
    this.fetched = 0;
    for (const info of this.layers.values()) info.grads.clear();
  }

  /** Disk traffic and cache use of the last apply(), or null before the first. */
  lastStep(): PagedStepStats | null {
    return this.last;
  }

  /**
   * Expert e of `layer` as it is now: its parameters by part and (after its
   * first update) its moments, copied out of the store.
   */
  expert(
    layer: string,
    e: number,
  ): {
    params: Record<Part, Float32Array>;
    m: Record<Part, Float32Array> | null;
    v: Record<Part, Float32Array> | null;
  } {
    const info = this.need(layer);
    const pk = paramKey(layer, e);
    if (!(e >= 0 && e < info.spec.numExperts))
      throw new OffloadError("INVALID_ARGUMENT", `PagedExperts: ${layer} has no expert ${e}`);
    this.materialize(info, e);
    const split = (a: Float32Array, base: number) => {
      const out = {} as Record<Part, Float32Array>;
      for (const p of PARTS)
        out[p] = a.slice(base + info.parts[p].offset, base + info.parts[p].offset + info.parts[p].len);
      return out;
    };
    const params = split(this.store.acquire(pk), 0);
    this.store.release(pk, false);
    const sk = stateKey(layer, e);
    if (!this.store.has(sk)) return { params, m: null, v: null };
    const s = this.store.acquire(sk);
    const m = split(s, 0);
    const v = split(s, info.length);
    this.store.release(sk, false);
    return { params, m, v };
  }

  /** Writes every changed expert to disk (each file atomically) and waits for background writes. */
  flush(): void {
    this.store.flush();
  }

  dispose(): void {
    this.release();
    this.store.close();
    this.store.clear();
    this.anchor.dispose();
  }

  private need(layer: string): LayerInfo {
    const info = this.layers.get(layer);
    if (!info) {
      throw new OffloadError(
        "INVALID_ARGUMENT",
        `PagedExperts: no layer '${layer}'; registered: ${[...this.layers.keys()].join(", ") || "none"}`,
      );
    }
    return info;
  }
}

function paramKey(layer: string, e: number): string {
  return `${layer}|${e}|p`;
}

function stateKey(layer: string, e: number): string {
  return `${layer}|${e}|s`;
}

/** The directory of paged experts inside offload.dir. */
export function pagedDir(dir: string): string {
  return path.join(dir, "experts");
}
