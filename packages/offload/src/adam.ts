// Adam / AdamW with its state offloaded (ZeRO-Offload, ZeRO-Infinity): the
// moments of every parameter — and, when the model runs on a backend whose
// tensors are not host arrays, its fp32 master weights — live in a
// TieredStore under a host-memory budget, the rest on disk. Parameter groups:
// an expert parameter <float32>[experts, ...] is kept as one slice per expert
// (its own files), the rest as one slice per parameter. Each slice is paged
// in, updated by the fused native CPU Adam (@polymoe/kernels adamStep) and
// released; with `experts: "routed"` only experts whose gradient slice is not
// all zeros (the batch routed tokens to them) are paged in at all.
import { adamStep, nativeAddon, experimental_nativeValues as nativeValues } from "@polymoe/kernels";
import { getBackend, type Tensor, tensor, type Variable } from "@tensorflow/tfjs-core";

import type { OffloadConfig } from "./config.js";
import { gb, gbSetting, OffloadError } from "./errors.js";
import { freeBytes } from "./files.js";
import { adamStepOpsOrder } from "./ops_order.js";
import { type StoreStats, TieredStore } from "./store.js";

/** The optimizer hyperparameters this needs (a subset of @polymoe/train's OptimizerConfig). */
export interface OffloadAdamHyper {
  type: "adam" | "adamw";
  betas: readonly [number, number];
  eps: number;
}

export interface OffloadedAdamWOptions {
  optimizer: OffloadAdamHyper;
  offload: OffloadConfig;
  /** The trainable parameters by name (every name apply() will see). */
  params: ReadonlyMap<string, Variable>;
  /** Weight decay of parameter `name` (0 for norms and biases, as the trainer decides). */
  decayOf: (name: string) => number;
  /** Expert parameters: name -> experts along axis 0 (e.g. from Transformer.expertLayout()). */
  experts?: ReadonlyMap<string, { localExperts: number }>;
}

/** What one apply() moved; bytes are disk traffic. */
export interface OffloadStepStats extends StoreStats {
  /** Expert slices updated / left alone (routed mode) in this step. */
  expertsUpdated: number;
  expertsSkipped: number;
}

/** Optimizer state as plain arrays — the format of @polymoe/train's AdamW (checkpoints are interchangeable). */
export interface OffloadOptimizerState {
  step: number;
  tensors: Map<string, { shape: number[]; values: Float32Array }>;
}

/** The host memory an offloaded run needs at least, by part (bytes). */
export interface OffloadMemoryPlan {
  parameters: number;
  gradients: number;
  /** Moments (and master weights off the native backend) of the largest slice: what must fit at once. */
  workingSet: number;
  reserve: number;
  minimum: number;
  /** What the store may cache: budget - parameters - gradients - reserve. */
  storeBudget: number;
  /** Optimizer state that lives in the store, wherever it is. */
  stateBytes: number;
}

interface Layout {
  shape: number[];
  size: number;
  /** Slices along axis 0 (experts), 1 for dense parameters. */
  slices: number;
  sliceLen: number;
  expert: boolean;
}

const GiB = 2 ** 30;

export class OffloadedAdamW {
  /** Updates applied so far. */
  step = 0;
  readonly store: TieredStore;
  readonly plan: OffloadMemoryPlan;
  private readonly layouts = new Map<string, Layout>();
  /** Parameters whose moments exist (were updated or loaded). */
  private readonly touched = new Set<string>();
  private last: OffloadStepStats | null = null;

  constructor(private readonly opts: OffloadedAdamWOptions) {
    const { offload } = opts;
    let paramBytes = 0;
    let largest = 0;
    for (const [name, p] of opts.params) {
      const e = opts.experts?.get(name);
      const slices = e ? e.localExperts : 1;
      if (e && (p.shape[0] !== slices || p.size % slices !== 0)) {
        throw new OffloadError(
          "INVALID_ARGUMENT",
          `expert parameter ${name} has shape [${p.shape}] but ${slices} experts were given; axis 0 must be the expert axis`,
        );
      }
      const layout = { shape: p.shape.slice(), size: p.size, slices, sliceLen: p.size / slices, expert: !!e };
      this.layouts.set(name, layout);
      paramBytes += p.size * 4;
      largest = Math.max(largest, layout.sliceLen);
    }
    // Off the native backend, fp32 master weights live in the store too.
    const perElement = getBackend() === "polymoe-native" ? 2 : 3;
    const budget = offload.hostMemoryGB * GiB;
    const reserve = offload.reserveGB * GiB;
    const workingSet = perElement * 4 * largest;
    const minimum = 2 * paramBytes + reserve + workingSet;
    this.plan = {
      parameters: paramBytes,
      gradients: paramBytes,
      workingSet,
      reserve,
      minimum,
      storeBudget: Math.max(0, budget - 2 * paramBytes - reserve),
      stateBytes: perElement * paramBytes,
    };
    if (budget < minimum) {
      throw new OffloadError(
        "BUDGET_TOO_SMALL",
        `offload.hostMemoryGB is ${offload.hostMemoryGB} but this model needs at least ${gb(minimum)} of host memory: ` +
          `${gb(paramBytes)} of parameters, ${gb(paramBytes)} of gradients, ${gb(workingSet)} for the largest ` +
          `optimizer-state slice and offload.reserveGB ${offload.reserveGB}; set offload.hostMemoryGB to ${gbSetting(minimum)} or more ` +
          "(or use a smaller model)",
      );
    }
    this.store = new TieredStore({ dir: offload.dir, hostBytes: this.plan.storeBudget });
    const spill = this.plan.stateBytes - this.plan.storeBudget;
    const free = freeBytes(offload.dir);
    if (spill > 0 && free < spill) {
      throw new OffloadError(
        "DISK_FULL",
        `offload.dir ${offload.dir} has ${gb(free)} free but ${gb(spill)} of optimizer state will not fit in ` +
          `the host budget and must go there; free ${gb(spill - free)} or point offload.dir at a larger disk`,
      );
    }
  }

  /** Disk traffic and host use of the last apply(), or null before the first. */
  lastStep(): OffloadStepStats | null {
    return this.last;
  }

  private key(name: string, slice: number, kind: "m" | "v" | "p"): string {
    return `${name}|${slice}|${kind}`;
  }

  private ensureSlice(name: string, l: Layout, s: number, init?: () => Float32Array): void {
    for (const kind of ["m", "v"] as const) {
      const k = this.key(name, s, kind);
      if (!this.store.has(k)) this.store.create(k, l.sliceLen);
    }
    if (init) {
      const k = this.key(name, s, "p");
      if (!this.store.has(k)) this.store.create(k, l.sliceLen, init());
    }
  }

  /**
   * One update with gradients multiplied by gradScale (same contract and
   * result as @polymoe/train's AdamW.apply).
   */
  apply(params: Map<string, Variable>, grads: Map<string, Tensor>, lr: number, gradScale = 1): void {
    const [beta1, beta2] = this.opts.optimizer.betas;
    const { eps } = this.opts.optimizer;
    const decoupled = this.opts.optimizer.type === "adamw";
    const routedOnly = this.opts.offload.experts === "routed";
    const addon = nativeAddon();
    this.step++;
    this.store.resetStats();
    let expertsUpdated = 0;
    let expertsSkipped = 0;
    for (const [name, g] of grads) {
      const p = params.get(name);
      const l = this.layouts.get(name);
      if (!p || !l) {
        throw new OffloadError(
          "INVALID_ARGUMENT",
          `offloaded optimizer: gradient for unknown parameter ${name}`,
        );
      }
      const pv = nativeValues(p);
      const gv = nativeValues(g) ?? (g.dataSync() as Float32Array);
      const host = pv ? null : (p.dataSync() as Float32Array);
      const weightDecay = this.opts.decayOf(name);
      const out = pv ? null : new Float32Array(l.size);
      this.touched.add(name);
      for (let s = 0; s < l.slices; s++) {
        const lo = s * l.sliceLen;
        const hi = lo + l.sliceLen;
        const grad = gv.subarray(lo, hi);
        if (l.expert && routedOnly && isZero(grad, addon)) {
          expertsSkipped++;
          if (out) out.set((host as Float32Array).subarray(lo, hi), lo);
          continue;
        }
        if (l.expert) expertsUpdated++;
        this.ensureSlice(name, l, s, pv ? undefined : () => (host as Float32Array).subarray(lo, hi));
        const mk = this.key(name, s, "m");
        const vk = this.key(name, s, "v");
        const pk = this.key(name, s, "p");
        const m = this.store.acquire(mk);
        const v = this.store.acquire(vk);
        const param = pv ? pv.subarray(lo, hi) : this.store.acquire(pk);
        const hyper = { lr, beta1, beta2, eps, weightDecay, decoupled, step: this.step, gradScale };
        // Native backend: the fused kernel, as AdamW uses there. Elsewhere: the
        // tfjs-ops order and rounding, as AdamW uses there (bitwise on cpu).
        if (pv) adamStep({ param, grad, m, v }, hyper);
        else adamStepOpsOrder(param, grad, m, v, hyper);
        if (out) out.set(param, lo);
        this.store.release(mk, true);
        this.store.release(vk, true);
        if (!pv) this.store.release(pk, true);
      }
      if (out) p.assign(tensor(out, p.shape, "float32"));
    }
    this.last = { ...this.store.stats(), expertsUpdated, expertsSkipped };
    if (this.opts.offload.enforceBudget) this.checkRss();
  }

  /** Throws when the process's peak RSS went over the budget (the clear error instead of an OOM kill). */
  checkRss(): void {
    const peak = process.resourceUsage().maxRSS * 1024;
    const budget = this.opts.offload.hostMemoryGB * GiB;
    if (peak > budget) {
      throw new OffloadError(
        "BUDGET_EXCEEDED",
        `peak RSS ${gb(peak)} went over offload.hostMemoryGB ${this.opts.offload.hostMemoryGB} after update ${this.step} ` +
          `(parameters ${gb(this.plan.parameters)}, gradients ${gb(this.plan.gradients)}, store cache up to ` +
          `${gb(this.plan.storeBudget)}, activations and runtime the rest); raise offload.hostMemoryGB to ` +
          `${gbSetting(peak * 1.1)} or more, or raise offload.reserveGB so the store caches less`,
      );
    }
  }

  /** The moments as full arrays per parameter ("<name>.m", "<name>.v"), as AdamW.state() gives them. */
  state(): OffloadOptimizerState {
    const tensors = new Map<string, { shape: number[]; values: Float32Array }>();
    for (const name of this.touched) {
      const l = this.layouts.get(name) as Layout;
      for (const kind of ["m", "v"] as const) {
        const full = new Float32Array(l.size);
        for (let s = 0; s < l.slices; s++) {
          const k = this.key(name, s, kind);
          if (!this.store.has(k)) continue; // never paged in: zeros
          full.set(this.store.acquire(k), s * l.sliceLen);
          this.store.release(k, false);
        }
        tensors.set(`${name}.${kind}`, { shape: l.shape.slice(), values: full });
      }
    }
    return { step: this.step, tensors };
  }

  /** Restores moments saved by state() (or by AdamW); unknown or misshapen entries are errors naming them. */
  load(state: OffloadOptimizerState, _params?: Map<string, Variable>): void {
    this.store.clear();
    this.touched.clear();
    this.step = state.step;
    for (const [key, t] of state.tensors) {
      const kind = key.slice(-1);
      const name = key.slice(0, -2);
      const l = this.layouts.get(name);
      if (!l || (kind !== "m" && kind !== "v")) {
        throw new OffloadError(
          "STATE_MISMATCH",
          `optimizer state has '${key}', which matches no parameter of this model`,
        );
      }
      if (t.shape.join() !== l.shape.join()) {
        throw new OffloadError(
          "STATE_MISMATCH",
          `optimizer state '${key}' has shape [${t.shape}] but parameter ${name} is [${l.shape}]`,
        );
      }
      this.touched.add(name);
      for (let s = 0; s < l.slices; s++) {
        this.store.create(
          this.key(name, s, kind),
          l.sliceLen,
          t.values.subarray(s * l.sliceLen, (s + 1) * l.sliceLen),
        );
      }
    }
  }

  dispose(): void {
    this.store.clear();
    this.touched.clear();
  }
}

function isZero(x: Float32Array, addon: ReturnType<typeof nativeAddon>): boolean {
  if (addon) return addon.sumSquares(x) === 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== 0) return false;
  return true;
}
