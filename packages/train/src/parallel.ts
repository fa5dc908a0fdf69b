// Training across ranks: the process groups and model hooks of one rank
// (ParallelRuntime), and the optimizer that keeps parameters, gradients and
// Adam moments in flat buffers so that gradients can be reduced in buckets
// (ZeRO stage 0) or partitioned (ZeRO stages 1 and 2, @polymoe/parallel's
// ZeroGroup), separately for dense and expert parameters:
//
// | group  | parameters                       | reduced over | scale  | ZeRO shards over |
// | ------ | -------------------------------- | ------------ | ------ | ---------------- |
// | dense  | everything but the experts       | dp           | 1 / dp | dp               |
// | expert | this rank's experts (tp slices)  | edp          | 1 / dp | edp              |
//
// One step: gradients (summed over micro-batches) are copied into the flat
// gradient buffer; reduced (stage 0: bucketed allReduce; 1: allReduce; 2:
// reduceScatter); the global norm is summed over ranks, each element counted
// once (see squares()); Adam updates this rank's shard; ZeRO allGathers the
// shards; the model's variables are written from the flat parameters.
import { nativeAddon } from "@polymoe/kernels";
import type { ExpertLayout, Transformer } from "@polymoe/model";
import {
  allReduceBucketed,
  type Communicator,
  commBuffer,
  createProcessGroups,
  gradientScale,
  type ModelParallelHooks,
  modelParallelHooks,
  type ParallelConfig,
  type ProcessGroups,
  type RankCoords,
  ZeroGroup,
} from "@polymoe/parallel";
import { type Tensor, tensor, tidy, type Variable } from "@tensorflow/tfjs-core";

import { TrainError } from "./errors.js";
import { decayOf, type OptimizerConfig } from "./optimizer.js";
import { expertName, takeSlice } from "./tensor_layout.js";

/** One rank's place in a parallel run: communicators, coordinates, model hooks. */
export interface ParallelRuntime {
  config: ParallelConfig;
  groups: ProcessGroups;
  coords: RankCoords;
  /** Pass hooks.exchange / hooks.slicing to the Transformer; hooks.clock times them. */
  hooks: ModelParallelHooks;
  /** This rank's shard of the batch stream: dpIndex of dp (tensor-parallel peers read the same). */
  dataRank: number;
  dataWorldSize: number;
}

/**
 * Builds this rank's process groups and model hooks (a collective: every rank
 * of `world` calls it with the same config). `experts` lists the expert counts
 * of the model's MoE layers, checked against ep.
 */
export async function createParallelRuntime(
  world: Communicator,
  config: ParallelConfig,
  options: { experts?: readonly number[] } = {},
): Promise<ParallelRuntime> {
  for (const n of options.experts ?? []) {
    if (n % config.ep !== 0) {
      throw new TrainError(
        "INVALID_CONFIG",
        `parallel.ep = ${config.ep} does not divide an MoE layer's ${n} experts; every rank of an ` +
          `expert-parallel group holds experts / ep of them (choose ep among the divisors of ${n})`,
      );
    }
  }
  const groups = await createProcessGroups(world, { ep: config.ep, tp: config.tp });
  const coords = groups.layout.coords(world.rank);
  return {
    config,
    groups,
    coords,
    hooks: modelParallelHooks(groups),
    dataRank: coords.dpIndex,
    dataWorldSize: groups.layout.dp,
  };
}

/** A parameter's place in its group's flat buffer. */
export interface FlatSegment {
  key: string;
  variable: Variable;
  offset: number;
  size: number;
  decay: number;
  /** Expert parameters: their layout (global ids, tensor slice). */
  expert?: ExpertLayout;
  /** The same values on every tensor-parallel rank (dense parameters, b2): counted once in norms. */
  tpReplicated: boolean;
}

/** Time spent in each communication phase of an optimizer step (ms). */
export interface OptimizerCommTimes {
  /** Gradient allReduce (stage 0/1) or reduceScatter (stage 2). */
  gradients: number;
  /** ZeRO's allGather of updated shards. */
  parameters: number;
}

/** A moment slice this rank holds: elements [offset, offset + values.length) of a parameter's flattened tensor. */
export interface MomentPiece {
  /** Checkpoint name: the parameter key, or "<layer>.experts.<global id>.<param>". */
  name: string;
  offset: number;
  m: Float32Array;
  v: Float32Array;
  /** Tensor-parallel part "k/n" when the values are of a tensor slice. */
  tp?: string;
}

/** Reads moments for loadMoments: the full flattened moment of a checkpoint name (null if absent). */
export type MomentSource = (
  name: string,
  moment: "m" | "v",
  numel: number,
  tp?: string,
) => Float32Array | null;

class FlatGroup {
  readonly numel: number;
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly gradViews: Float32Array[];
  readonly paramViews: Float32Array[];
  readonly zero: ZeroGroup | null;
  /** [start, end) of this rank's shard, clipped to the real elements. */
  readonly start: number;
  readonly end: number;
  readonly m: Float32Array;
  readonly v: Float32Array;

  constructor(
    readonly kind: "dense" | "expert",
    readonly segments: FlatSegment[],
    readonly comm: Communicator,
    readonly stage: 0 | 1 | 2,
    gradScale: number,
  ) {
    this.numel = segments.reduce((n, s) => n + s.size, 0);
    if (stage === 0) {
      this.zero = null;
      this.params = commBuffer(this.numel);
      this.grads = commBuffer(this.numel);
      this.paramViews = segments.map((s) => this.params.subarray(s.offset, s.offset + s.size));
      this.gradViews = segments.map((s) => this.grads.subarray(s.offset, s.offset + s.size));
      this.start = 0;
      this.end = this.numel;
    } else {
      this.zero = new ZeroGroup({
        comm,
        stage,
        sizes: segments.map((s) => s.size),
        gradScale,
      });
      this.params = this.zero.params;
      this.grads = this.zero.grads;
      this.paramViews = this.zero.paramViews;
      this.gradViews = this.zero.gradViews;
      this.start = Math.min(this.zero.shardStart, this.numel);
      this.end = Math.min(this.zero.shardStart + this.zero.partition.shardSize, this.numel);
    }
    this.m = new Float32Array(this.end - this.start);
    this.v = new Float32Array(this.end - this.start);
  }

  /** The reduced gradient of [start, end) (stage 2: ZeroGroup's own shard buffer). */
  gradShard(): Float32Array {
    if (!this.zero) return this.grads.subarray(this.start, this.end);
    return this.zero.gradShard.subarray(0, this.end - this.start);
  }

  paramShard(): Float32Array {
    return this.params.subarray(this.start, this.end);
  }

  /** Segments overlapping the shard, with the overlap in flat coordinates. */
  *shardSegments(): Generator<{ seg: FlatSegment; from: number; to: number }> {
    for (const seg of this.segments) {
      const from = Math.max(seg.offset, this.start);
      const to = Math.min(seg.offset + seg.size, this.end);
      if (from < to) yield { seg, from, to };
    }
  }
}

const sumSquares = (x: Float32Array): number => {
  const addon = nativeAddon();
  if (addon) return addon.sumSquares(x);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] as number) * (x[i] as number);
  return s;
};

/**
 * Adam / AdamW over flat parameter groups, data-parallel with ZeRO stage 0, 1
 * or 2 (see the file comment). The math is AdamW's (optimizer.ts), element for
 * element, so a run over ranks matches a one-process run.
 */
export class ShardedOptimizer {
  readonly dense: FlatGroup;
  readonly expert: FlatGroup;
  /** Updates applied so far. */
  step = 0;
  private readonly scale: number;

  constructor(
    model: Transformer,
    vars: Map<string, Variable>,
    private readonly rt: ParallelRuntime,
    readonly config: OptimizerConfig,
  ) {
    const layout = model.expertLayout();
    const segs = { dense: [] as FlatSegment[], expert: [] as FlatSegment[] };
    const offsets = { dense: 0, expert: 0 };
    for (const [key, variable] of vars) {
      const expert = layout.get(key);
      const kind = expert ? "expert" : "dense";
      segs[kind].push({
        key,
        variable,
        offset: offsets[kind],
        size: variable.size,
        decay: decayOf(config, key),
        ...(expert ? { expert } : {}),
        tpReplicated: !expert?.slice,
      });
      offsets[kind] += variable.size;
    }
    const stage = rt.config.zeroStage;
    this.scale = gradientScale(rt.groups);
    this.dense = new FlatGroup("dense", segs.dense, rt.groups.dp, stage, this.scale);
    this.expert = new FlatGroup("expert", segs.expert, rt.groups.edp, stage, this.scale);
    this.syncFromModel();
  }

  private get groups(): FlatGroup[] {
    return [this.dense, this.expert];
  }

  /** Copies the model's current values into the flat parameters (after init or a checkpoint load). */
  syncFromModel(): void {
    for (const g of this.groups) {
      g.segments.forEach((s, i) => {
        (g.paramViews[i] as Float32Array).set(s.variable.dataSync() as Float32Array);
      });
    }
  }

  /** Writes the flat parameters into the model's variables. */
  writeToModel(): void {
    tidy(() => {
      for (const g of this.groups) {
        g.segments.forEach((s, i) => {
          s.variable.assign(tensor((g.paramViews[i] as Float32Array).slice(), s.variable.shape));
        });
      }
    });
  }

  /** Sets the flat gradients to `grads` (summed over micro-batches; missing = zero). */
  loadGradients(grads: Map<string, Tensor>): void {
    for (const g of this.groups) {
      g.grads.fill(0);
      g.segments.forEach((s, i) => {
        const t = grads.get(s.key);
        if (t) (g.gradViews[i] as Float32Array).set(t.dataSync() as Float32Array);
      });
    }
  }

  /** Averages gradients over the data-parallel replicas (see the file comment). Resolves to the time taken (ms). */
  async reduceGradients(): Promise<number> {
    const t0 = performance.now();
    const run = (g: FlatGroup) =>
      g.zero
        ? g.zero.reduceGradients()
        : allReduceBucketed(g.comm, g.gradViews, { bucketMb: this.rt.config.bucketMb, scale: this.scale });
    await Promise.all(this.groups.map(run));
    return performance.now() - t0;
  }

  /**
   * This rank's share of the squared global gradient norm, [dense, expert],
   * after reduceGradients: summed over the world, every element counts once.
   * Stage 0 holds whole groups, replicated over dp (dense) / edp (experts):
   * only their index-0 ranks count; ZeRO ranks count their shards. Values
   * replicated over tensor-parallel ranks count on tp index 0 only.
   */
  squares(): [number, number] {
    const c = this.rt.coords;
    const out: [number, number] = [0, 0];
    this.groups.forEach((g, gi) => {
      if (!g.zero && (g.kind === "dense" ? c.dpIndex : c.edpIndex) !== 0) return;
      const grad = g.gradShard();
      for (const { seg, from, to } of g.shardSegments()) {
        if (seg.tpReplicated && c.tpIndex !== 0) continue;
        out[gi as 0 | 1] += sumSquares(grad.subarray(from - g.start, to - g.start));
      }
    });
    return out;
  }

  /** One Adam step on this rank's shards with gradients multiplied by gradScale. */
  update(lr: number, gradScale: number): void {
    const [b1, b2] = this.config.betas;
    const { eps } = this.config;
    this.step++;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    const decoupled = this.config.type === "adamw";
    const addon = nativeAddon();
    for (const g of this.groups) {
      const p = g.paramShard();
      const grad = g.gradShard();
      for (const { seg, from, to } of g.shardSegments()) {
        const [a, b] = [from - g.start, to - g.start];
        const args = [p.subarray(a, b), grad.subarray(a, b), g.m.subarray(a, b), g.v.subarray(a, b)] as const;
        if (addon) addon.adamUpdate(...args, lr, b1, b2, eps, seg.decay, c1, c2, gradScale, decoupled);
        else adamUpdateJs(...args, lr, b1, b2, eps, seg.decay, c1, c2, gradScale, decoupled);
      }
    }
  }

  /** ZeRO: every rank gets the updated shards. Resolves to the time taken (ms). */
  async gatherParameters(): Promise<number> {
    if (!this.dense.zero && !this.expert.zero) return 0;
    const t0 = performance.now();
    await Promise.all(this.groups.map((g) => g.zero?.gatherParameters()));
    return performance.now() - t0;
  }

  /**
   * The moments this rank must write in a checkpoint, split per parameter
   * (experts per global id). Replicated state is written once: stage 0 by the
   * index-0 rank of its replication group, tensor-replicated values by tp
   * index 0.
   */
  momentPieces(): MomentPiece[] {
    const c = this.rt.coords;
    const out: MomentPiece[] = [];
    for (const g of this.groups) {
      if (!g.zero && (g.kind === "dense" ? c.dpIndex : c.edpIndex) !== 0) continue;
      for (const { seg, from, to } of g.shardSegments()) {
        if (seg.tpReplicated && c.tpIndex !== 0) continue;
        const m = g.m.subarray(from - g.start, to - g.start);
        const v = g.v.subarray(from - g.start, to - g.start);
        const lo = from - seg.offset;
        const lay = seg.expert;
        if (!lay) {
          out.push({ name: seg.key, offset: lo, m: m.slice(), v: v.slice() });
          continue;
        }
        const per = seg.size / lay.localExperts;
        const tp = lay.slice ? `${lay.slice.rank}/${lay.slice.size}` : undefined;
        for (let at = lo; at < lo + m.length; ) {
          const l = Math.floor(at / per);
          const stop = Math.min(lo + m.length, (l + 1) * per);
          out.push({
            name: expertName(seg.key, lay.firstExpert + l),
            offset: at - l * per,
            m: m.slice(at - lo, stop - lo),
            v: v.slice(at - lo, stop - lo),
            ...(tp ? { tp } : {}),
          });
          at = stop;
        }
      }
    }
    return out;
  }

  /** Loads this rank's shards of the moments (any saved layout) and the step count. */
  loadMoments(read: MomentSource, step: number): void {
    this.step = step;
    for (const g of this.groups) {
      for (const { seg, from, to } of g.shardSegments()) {
        const dst = [g.m.subarray(from - g.start, to - g.start), g.v.subarray(from - g.start, to - g.start)];
        const lo = from - seg.offset;
        (["m", "v"] as const).forEach((moment, mi) => {
          const full = localMoment(read, seg, moment);
          if (!full) {
            throw missingMoment(
              seg.key,
              moment,
              seg.expert?.slice ? `${seg.expert.slice.rank}/${seg.expert.slice.size}` : undefined,
            );
          }
          (dst[mi] as Float32Array).set(full.subarray(lo, lo + (to - from)));
        });
      }
    }
  }

  resetMoments(): void {
    this.step = 0;
    for (const g of this.groups) {
      g.m.fill(0);
      g.v.fill(0);
    }
  }
}

/**
 * The full flattened moment of a segment as this rank holds the parameter
 * (local experts stacked, tensor slice taken), from a checkpoint in any
 * layout; null when the checkpoint lacks it.
 */
export function localMoment(read: MomentSource, seg: FlatSegment, moment: "m" | "v"): Float32Array | null {
  const lay = seg.expert;
  const shape = seg.variable.shape;
  if (!lay) return read(seg.key, moment, seg.size);
  const per = seg.size / lay.localExperts;
  const out = new Float32Array(seg.size);
  const perShape = shape.slice(1);
  for (let l = 0; l < lay.localExperts; l++) {
    const name = expertName(seg.key, lay.firstExpert + l);
    let values: Float32Array | null = null;
    if (lay.slice) values = read(name, moment, per, `${lay.slice.rank}/${lay.slice.size}`);
    if (!values) {
      const fullShape = perShape.slice();
      if (lay.slice) fullShape[lay.slice.axis] = (fullShape[lay.slice.axis] as number) * lay.slice.size;
      const full = read(
        name,
        moment,
        fullShape.reduce((a, b) => a * b, 1),
      );
      if (!full) return null;
      values = lay.slice ? takeSlice(full, fullShape, lay.slice.axis, lay.slice.rank, lay.slice.size) : full;
    }
    out.set(values, l * per);
  }
  return out;
}

function missingMoment(name: string, moment: string, tp?: string): TrainError {
  return new TrainError(
    "CHECKPOINT_CORRUPT",
    `optimizer state '${name}.${moment}'${tp ? ` (tensor-parallel part ${tp})` : ""} is missing or incomplete in the checkpoint; ` +
      "resume with --reset-optimizer to keep the weights and start the optimizer fresh",
  );
}

/** The native fused update's formula, in float32 steps (used when the addon is missing). */
function adamUpdateJs(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  lr: number,
  b1: number,
  b2: number,
  eps: number,
  wd: number,
  c1: number,
  c2: number,
  scale: number,
  decoupled: boolean,
): void {
  const f = Math.fround;
  const invB1 = f(1 / c1);
  const invSqrtB2 = f(1 / Math.sqrt(c2));
  for (let i = 0; i < p.length; i++) {
    let gi = f((g[i] as number) * scale);
    if (!decoupled) gi = f(gi + f(wd * (p[i] as number)));
    const mi = f(f(b1 * (m[i] as number)) + f((1 - b1) * gi));
    const vi = f(f(b2 * (v[i] as number)) + f(f((1 - b2) * gi) * gi));
    m[i] = mi;
    v[i] = vi;
    let update = f(f(mi * invB1) / f(f(Math.sqrt(vi) * invSqrtB2) + eps));
    if (decoupled) update = f(update + f(wd * (p[i] as number)));
    p[i] = f((p[i] as number) - f(lr * update));
  }
}
