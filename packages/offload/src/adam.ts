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

/**
 * One store entry per unit and slice: a dense parameter, or one expert of an
 * experts module (all its parameters together: one file per expert, so paging
 * an expert is one read and one write). Per member: [m | v | master?].
 */
interface Unit {
  key: string;
  slices: number;
  members: { name: string; offset: number; len: number }[];
  /** Floats per slice entry. */
  length: number;
  expert: boolean;
}

const GiB = 2 ** 30;

export class OffloadedAdamW {
  /** Updates applied so far. */
  step = 0;
  readonly store: TieredStore;
  readonly plan: OffloadMemoryPlan;
  private readonly layouts = new Map<string, Layout>();
  private readonly units: Unit[] = [];
  /** Floats per element in an entry: m, v (+ fp32 master off the native backend). */
  private readonly perElement: 2 | 3;
  /** Parameters whose moments exist (were updated or loaded). */
  private readonly touched = new Set<string>();
  private last: OffloadStepStats | null = null;

  constructor(private readonly opts: OffloadedAdamWOptions) {
    const { offload } = opts;
    let paramBytes = 0;
    const groups = new Map<string, Unit>();
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
      // Experts of one module share entries; a dense parameter is its own unit.
      const key = e ? `${name.replace(/\.[^.]+$/, "")}#experts${slices}` : name;
      let u = groups.get(key);
      if (!u) {
        u = { key, slices, members: [], length: 0, expert: !!e };
        groups.set(key, u);
        this.units.push(u);
      }
      u.members.push({ name, offset: 0, len: layout.sliceLen });
    }
    // Off the native backend, fp32 master weights live in the store too.
    this.perElement = getBackend() === "polymoe-native" ? 2 : 3;
    let largest = 0;
    for (const u of this.units) {
      let off = 0;
      for (const m of u.members) {
        m.offset = off;
        off += this.perElement * m.len;
      }
      u.length = off;
      largest = Math.max(largest, off);
    }
    const budget = offload.hostMemoryGB * GiB;
    // Paged experts' cache is host memory too (their store is PagedExperts').
    const reserve = (offload.reserveGB + (offload.experts === "paged" ? offload.expertCacheGB : 0)) * GiB;
    const workingSet = 4 * largest;
    const minimum = 2 * paramBytes + reserve + workingSet;
    this.plan = {
      parameters: paramBytes,
      gradients: paramBytes,
      workingSet,
      reserve,
      minimum,
      storeBudget: Math.max(0, budget - 2 * paramBytes - reserve),
      stateBytes: this.perElement * paramBytes,
    };
    if (budget < minimum) {
      throw new OffloadError(
        "BUDGET_TOO_SMALL",
        `offload.hostMemoryGB is ${offload.hostMemoryGB} but this model needs at least ${gb(minimum)} of host memory: ` +
          `${gb(paramBytes)} of parameters, ${gb(paramBytes)} of gradients, ${gb(workingSet)} for the largest ` +
          `optimizer-state slice and offload.reserveGB ${offload.reserveGB}` +
          `${offload.experts === "paged" ? ` + offload.expertCacheGB ${offload.expertCacheGB}` : ""}; set offload.hostMemoryGB to ${gbSetting(minimum)} or more ` +
          "(or use a smaller model)",
      );
    }
    this.store = new TieredStore({
      dir: offload.dir,
      hostBytes: this.plan.storeBudget,
      fsync: offload.fsync,
    });
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

  private key(u: Unit, slice: number): string {
    return `${u.key}|${slice}`;
  }

  /** Creates the entry of (u, slice) if missing: zero moments, masters from the parameters' values. */
  private ensure(u: Unit, s: number, hostValues: (name: string) => Float32Array | null): void {
    const key = this.key(u, s);
    if (this.store.has(key)) return;
    if (this.perElement === 2) {
      this.store.create(key, u.length);
      return;
    }
    const init = new Float32Array(u.length);
    for (const m of u.members) {
      const values = hostValues(m.name);
      if (values) init.set(values.subarray(s * m.len, (s + 1) * m.len), m.offset + 2 * m.len);
    }
    this.store.create(key, u.length, init);
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
    // Views of every parameter and gradient (zero-copy on the native backend).
    const views = new Map<
      string,
      { p: Variable; pv: Float32Array | null; gv: Float32Array; out: Float32Array | null }
    >();
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (!p || !this.layouts.has(name)) {
        throw new OffloadError(
          "INVALID_ARGUMENT",
          `offloaded optimizer: gradient for unknown parameter ${name}`,
        );
      }
      const pv = nativeValues(p);
      if (!pv && this.perElement === 2) {
        throw new OffloadError(
          "INVALID_ARGUMENT",
          `offloaded optimizer: ${name} is not on the polymoe-native backend, which was active when the optimizer ` +
            "was made; create it on the backend the model trains on",
        );
      }
      const gv = nativeValues(g) ?? Float32Array.from(g.dataSync() as Float32Array);
      views.set(name, { p, pv, gv, out: pv ? null : Float32Array.from(p.dataSync() as Float32Array) });
      this.touched.add(name);
    }
    const others = new Map<string, Float32Array>();
    const hostValues = (name: string) => {
      const v = views.get(name);
      if (v) return v.pv ?? v.out;
      // A member of the unit without a gradient this step: its master is its current value.
      let x = others.get(name);
      const p = params.get(name);
      if (!x && p) {
        x = Float32Array.from(p.dataSync() as Float32Array);
        others.set(name, x);
      }
      return x ?? null;
    };
    for (const u of this.units) {
      const members = u.members.filter((m) => views.has(m.name));
      if (members.length === 0) continue;
      for (let s = 0; s < u.slices; s++) {
        if (
          u.expert &&
          routedOnly &&
          members.every((m) =>
            isZero(
              (views.get(m.name) as { gv: Float32Array }).gv.subarray(s * m.len, (s + 1) * m.len),
              addon,
            ),
          )
        ) {
          expertsSkipped++;
          continue;
        }
        if (u.expert) expertsUpdated++;
        this.ensure(u, s, hostValues);
        const key = this.key(u, s);
        const entry = this.store.acquire(key);
        for (const m of members) {
          const v = views.get(m.name) as {
            pv: Float32Array | null;
            gv: Float32Array;
            out: Float32Array | null;
          };
          const lo = s * m.len;
          const hi = lo + m.len;
          const mm = entry.subarray(m.offset, m.offset + m.len);
          const vv = entry.subarray(m.offset + m.len, m.offset + 2 * m.len);
          const grad = v.gv.subarray(lo, hi);
          const hyper = {
            lr,
            beta1,
            beta2,
            eps,
            weightDecay: this.opts.decayOf(m.name),
            decoupled,
            step: this.step,
            gradScale,
          };
          // Native backend: the fused kernel in place on the parameter, as AdamW
          // does there. Elsewhere: the fp32 master in the entry, in the tfjs-ops
          // order and rounding AdamW uses there (bitwise on cpu).
          if (v.pv) {
            adamStep({ param: v.pv.subarray(lo, hi), grad, m: mm, v: vv }, hyper);
          } else {
            const master = entry.subarray(m.offset + 2 * m.len, m.offset + 3 * m.len);
            adamStepOpsOrder(master, grad, mm, vv, hyper);
            (v.out as Float32Array).set(master, lo);
          }
        }
        this.store.release(key, true);
      }
    }
    for (const v of views.values()) {
      if (!v.out) continue;
      const t = tensor(v.out, v.p.shape, "float32");
      v.p.assign(t);
      t.dispose();
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
          `${gbSetting(peak * 1.1)} or more, raise offload.reserveGB so the store caches less, or cap the native ` +
          "buffer pool (POLYMOE_POOL_MB), which counts against the budget",
      );
    }
  }

  /** The moments as full arrays per parameter ("<name>.m", "<name>.v"), as AdamW.state() gives them. */
  state(): OffloadOptimizerState {
    const tensors = new Map<string, { shape: number[]; values: Float32Array }>();
    const full = new Map<string, { m: Float32Array; v: Float32Array }>();
    for (const name of this.touched) {
      const l = this.layouts.get(name) as Layout;
      full.set(name, { m: new Float32Array(l.size), v: new Float32Array(l.size) });
    }
    for (const u of this.units) {
      const members = u.members.filter((m) => full.has(m.name));
      if (members.length === 0) continue;
      for (let s = 0; s < u.slices; s++) {
        const key = this.key(u, s);
        if (!this.store.has(key)) continue; // never paged in: zeros
        const entry = this.store.acquire(key);
        for (const m of members) {
          const f = full.get(m.name) as { m: Float32Array; v: Float32Array };
          f.m.set(entry.subarray(m.offset, m.offset + m.len), s * m.len);
          f.v.set(entry.subarray(m.offset + m.len, m.offset + 2 * m.len), s * m.len);
        }
        this.store.release(key, false);
      }
    }
    for (const [name, f] of full) {
      const shape = (this.layouts.get(name) as Layout).shape;
      tensors.set(`${name}.m`, { shape: shape.slice(), values: f.m });
      tensors.set(`${name}.v`, { shape: shape.slice(), values: f.v });
    }
    return { step: this.step, tensors };
  }

  /**
   * Restores moments saved by state() (or by AdamW); unknown or misshapen
   * entries are errors naming them. Master weights (off the native backend)
   * are taken from `params`, which must hold the checkpoint's weights.
   */
  load(state: OffloadOptimizerState, params?: Map<string, Variable>): void {
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
    }
    const source = params ?? this.opts.params;
    const values = new Map<string, Float32Array>();
    const hostValues = (name: string) => {
      if (this.perElement === 2) return null;
      let v = values.get(name);
      const p = source.get(name);
      if (!v && p) {
        v = Float32Array.from(p.dataSync() as Float32Array);
        values.set(name, v);
      }
      return v ?? null;
    };
    for (const u of this.units) {
      const members = u.members.filter(
        (m) => state.tensors.has(`${m.name}.m`) || state.tensors.has(`${m.name}.v`),
      );
      if (members.length === 0) continue;
      for (let s = 0; s < u.slices; s++) {
        this.ensure(u, s, hostValues);
        const key = this.key(u, s);
        const entry = this.store.acquire(key);
        for (const m of members) {
          const mt = state.tensors.get(`${m.name}.m`);
          const vt = state.tensors.get(`${m.name}.v`);
          if (mt) entry.set(mt.values.subarray(s * m.len, (s + 1) * m.len), m.offset);
          if (vt) entry.set(vt.values.subarray(s * m.len, (s + 1) * m.len), m.offset + m.len);
        }
        this.store.release(key, true);
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
