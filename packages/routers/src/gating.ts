// Gating as pure functions: logits in, one Routing record out.
//
// Axis legend: T tokens, E experts, K choices per token, P pairs, N tasks.
// Selection, capacity and statistics run on the host over typed arrays (exact,
// O(P)); everything the loss depends on — combine weights, aux and z losses —
// is computed with tfjs ops from the logits, so gradients reach the gate.
import {
  div,
  gather,
  logSumExp,
  mul,
  reshape,
  type Scalar,
  scalar,
  softmax,
  square,
  sum,
  type Tensor1D,
  type Tensor2D,
  tensor1d,
  tidy,
} from "@tensorflow/tfjs-core";

import { assignSlots, expertCapacity, type OverflowPolicy } from "./capacity.js";
import { RoutingError } from "./errors.js";
import type { RouteContext, Routing, RoutingMetrics } from "./types.js";

/** Capacity options shared by every router. */
export interface CapacityOptions {
  /** Capacity factor in effect (train or eval); <= 0 = dropless. */
  capacityFactor: number;
  minCapacity: number;
  policy: OverflowPolicy;
}

/** Options of token-choice top-k gating (the user-facing config is TopKRouterConfig). */
export interface TopKGatingOptions extends CapacityOptions {
  k: number;
  /** "before": softmax over all experts, then top-k (GShard, Switch); "after": softmax over the k chosen logits. */
  softmaxOrder: "before" | "after";
  /** k >= 2 with softmax before: rescale each token's k weights to sum to 1. */
  renormalize: boolean;
  /** GShard random routing: keep choice j >= 1 with probability min(1, 2 w_j / (w_0 + w_j)) (training only). */
  secondExpertSampling: boolean;
}

// ---------------------------------------------------------------------------
// validation

function checkLogits(logits: Tensor2D, op: string): void {
  if (logits.rank !== 2) {
    throw new RoutingError(
      "SHAPE_MISMATCH",
      `${op}: logits must be [tokens, experts], got shape [${logits.shape}]`,
    );
  }
  if (logits.dtype !== "float32") {
    throw new RoutingError(
      "INVALID_ARGUMENT",
      `${op}: logits must be float32 (router math runs in fp32), got ${logits.dtype}`,
    );
  }
}

function checkK(k: number, E: number, op: string): void {
  if (!Number.isInteger(k) || k < 1 || k > E) {
    throw new RoutingError(
      "INVALID_ARGUMENT",
      `${op}: k must be an integer in [1, ${E}] (the expert count), got ${k}`,
    );
  }
}

function padMaskOf(ctx: RouteContext, T: number, op: string): Uint8Array {
  if (!ctx.padMask) return new Uint8Array(T).fill(1);
  if (ctx.padMask.length !== T) {
    throw new RoutingError(
      "SHAPE_MISMATCH",
      `${op}: padMask has ${ctx.padMask.length} entries, expected one per token (${T})`,
    );
  }
  return ctx.padMask;
}

function checkFinite(
  values: Float32Array,
  E: number,
  rowOk: (row: number) => boolean,
  what: string,
  op: string,
): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v) && rowOk(Math.floor(i / E))) {
      throw new RoutingError(
        "NON_FINITE",
        `${op}: the ${what} of row ${Math.floor(i / E)}, expert ${i % E} is ${v}; check the router input and the learning rate`,
      );
    }
  }
}

/** Validates ctx.taskIds against T tokens and N tasks (padding tokens may carry any id). */
export function checkTaskIds(
  ctx: RouteContext,
  T: number,
  N: number,
  mask: Uint8Array,
  op: string,
): Int32Array {
  const ids = ctx.taskIds;
  if (!ids)
    throw new RoutingError(
      "INVALID_ARGUMENT",
      `${op}: task routing needs ctx.taskIds (one task id per token)`,
    );
  if (ids.length !== T) {
    throw new RoutingError(
      "SHAPE_MISMATCH",
      `${op}: taskIds has ${ids.length} entries, expected one per token (${T})`,
    );
  }
  for (let t = 0; t < T; t++) {
    const v = ids[t] as number;
    if (mask[t] && !(v >= 0 && v < N)) {
      throw new RoutingError(
        "INVALID_ARGUMENT",
        `${op}: taskIds[${t}] = ${v} is not in [0, ${N}) (numTasks = ${N})`,
      );
    }
  }
  return ids;
}

// ---------------------------------------------------------------------------
// host helpers

/** Indices of the k largest of row[off .. off+E) into out[outOff ..] (ties: lower index first). */
export function topKRow(
  row: ArrayLike<number>,
  off: number,
  E: number,
  k: number,
  out: Int32Array,
  outOff: number,
): void {
  for (let j = 0; j < k; j++) out[outOff + j] = -1;
  for (let e = 0; e < E; e++) {
    const v = row[off + e] as number;
    let pos = k;
    while (pos > 0) {
      const cur = out[outOff + pos - 1] as number;
      if (cur >= 0 && (row[off + cur] as number) >= v) break;
      pos--;
    }
    if (pos >= k) continue;
    for (let j = k - 1; j > pos; j--) out[outOff + j] = out[outOff + j - 1] as number;
    out[outOff + pos] = e;
  }
}

/** Host result of a token-choice routing (everything but the tensors). */
interface HostRouting {
  capacity: number;
  token: Int32Array;
  dest: Int32Array;
  expert: Int32Array;
  slot: Int32Array;
  dropped: Uint8Array;
  keep: Float32Array; // [P] 1 = kept
  counts: Int32Array;
  kept: Int32Array;
  f: Float32Array; // [E] top-1 fraction over real tokens
  metrics: RoutingMetrics;
}

/**
 * Capacity, slots and statistics for token-major pairs.
 * choice: <int32>[T*K] chosen experts; sampled: <uint8>[T*K] pairs that
 * survive sampling; probs: <float32>[T*E] gate probabilities (for entropy and
 * the score policy).
 */
function routeTokenMajor(
  T: number,
  E: number,
  k: number,
  choice: Int32Array,
  sampled: Uint8Array,
  probs: Float32Array,
  mask: Uint8Array,
  opts: CapacityOptions,
  ctx: RouteContext,
  temperature: number,
): HostRouting {
  const P = T * k;
  const expert = new Int32Array(P).fill(-1);
  const score = new Float32Array(T);
  let n = 0;
  for (let t = 0; t < T; t++) {
    score[t] = probs[t * E + (choice[t * k] as number)] as number;
    if (!mask[t]) continue;
    n++;
    for (let j = 0; j < k; j++) if (sampled[t * k + j]) expert[t * k + j] = choice[t * k + j] as number;
  }
  const capacity = expertCapacity(T, E, k, opts.capacityFactor, opts.minCapacity);
  const a = assignSlots(expert, k, E, capacity, opts.policy, ctx.rng, score);
  const token = new Int32Array(P);
  const dest = new Int32Array(P).fill(-1);
  const dropped = new Uint8Array(P);
  const keep = new Float32Array(P);
  const tokenKept = new Uint8Array(T);
  let routed = 0;
  let droppedPairs = 0;
  for (let p = 0; p < P; p++) {
    const t = Math.floor(p / k);
    token[p] = t;
    if (!mask[t]) continue;
    if (!sampled[p]) {
      dropped[p] = 1;
      continue;
    }
    routed++;
    const s = a.slot[p] as number;
    if (s < 0) {
      dropped[p] = 1;
      droppedPairs++;
      continue;
    }
    dest[p] = (choice[p] as number) * a.capacity + s;
    keep[p] = 1;
    tokenKept[t] = 1;
  }
  const f = new Float32Array(E);
  let entropy = 0;
  for (let t = 0; t < T; t++) {
    if (!mask[t]) continue;
    f[choice[t * k] as number]! += 1 / n;
    for (let e = 0; e < E; e++) {
      const q = probs[t * E + e] as number;
      if (q > 0) entropy -= (q * Math.log(q)) / n;
    }
  }
  let unrouted = 0;
  for (let t = 0; t < T; t++) if (mask[t] && !tokenKept[t]) unrouted++;
  const metrics: RoutingMetrics = {
    tokens: n,
    capacity: a.capacity,
    droppedFraction: routed > 0 ? droppedPairs / routed : 0,
    unroutedFraction: n > 0 ? unrouted / n : 0,
    gateEntropy: entropy,
    unusedExperts: a.kept.reduce((u, c) => u + (c === 0 ? 1 : 0), 0),
    tokensPerExpert: a.kept,
    auxLoss: 0,
    zLoss: 0,
    temperature,
  };
  if (ctx.taskIds && ctx.numTasks) {
    const usage = new Int32Array(ctx.numTasks * E);
    for (let p = 0; p < P; p++) {
      if ((dest[p] as number) >= 0)
        usage[(ctx.taskIds[Math.floor(p / k)] as number) * E + (choice[p] as number)]!++;
    }
    metrics.usagePerTask = usage;
  }
  return {
    capacity: a.capacity,
    token,
    dest,
    expert,
    slot: a.slot,
    dropped,
    keep,
    counts: a.counts,
    kept: a.kept,
    f,
    metrics,
  };
}

/**
 * The tensors of a token-choice routing, on the tape:
 * combineWeight [P] = weightsTK masked by capacity; auxLoss = E sum_e f_e P_e
 * with P_e the mean gate probability over real tokens; zLoss = mean lse^2.
 */
function routingTensors(
  h: HostRouting,
  probsTE: Tensor2D,
  lseT: Tensor1D,
  weightsTK: Tensor2D,
  mask: Uint8Array,
): { combineWeight: Tensor1D; auxLoss: Scalar; zLoss: Scalar } {
  const [T, E] = probsTE.shape;
  const n = Math.max(1, h.metrics.tokens);
  const maskT = tensor1d(Float32Array.from(mask));
  const combineWeight = mul(reshape(weightsTK, [h.keep.length]), tensor1d(h.keep)) as Tensor1D;
  const Pe = mul(sum(mul(probsTE, reshape(maskT, [T, 1])), 0), 1 / n);
  const auxLoss = mul(sum(mul(Pe, tensor1d(h.f))), E) as Scalar;
  const zLoss = mul(sum(mul(square(lseT), maskT)), 1 / n) as Scalar;
  return { combineWeight, auxLoss, zLoss };
}

function assemble(
  h: HostRouting,
  T: number,
  E: number,
  k: number | null,
  tensors: { combineWeight: Tensor1D; auxLoss: Scalar; zLoss: Scalar },
): Routing {
  h.metrics.auxLoss = tensors.auxLoss.dataSync()[0] as number;
  h.metrics.zLoss = tensors.zLoss.dataSync()[0] as number;
  return {
    numTokens: T,
    numExperts: E,
    capacity: h.capacity,
    k,
    pairs: { token: h.token, dest: h.dest },
    expert: h.expert,
    slot: h.slot,
    dropped: h.dropped,
    combineWeight: tensors.combineWeight,
    counts: h.counts,
    auxLoss: tensors.auxLoss,
    zLoss: tensors.zLoss,
    metrics: h.metrics,
  };
}

// ---------------------------------------------------------------------------
// routers' gating functions

/**
 * Token-choice top-k gating (Switch: k=1; GShard: k=2; any k).
 *
 * logits: <float32>[T, E] router logits (noise and temperature already applied).
 * Pairs are token-major (p = t*K + j; choice j = the j-th largest gate).
 * Padding tokens (ctx.padMask) are not routed and not counted.
 */
export function topKGating(
  logits: Tensor2D,
  opts: TopKGatingOptions,
  ctx: RouteContext,
  temperature = 1,
): Routing {
  checkLogits(logits, "topKGating");
  const [T, E] = logits.shape;
  const { k } = opts;
  checkK(k, E, "topKGating");
  const mask = padMaskOf(ctx, T, "topKGating");
  const hostLogits = logits.dataSync() as Float32Array;
  checkFinite(hostLogits, E, (t) => mask[t] === 1, "logit", "topKGating");
  let host: HostRouting | undefined;
  const tensors = tidy(() => {
    const probsTE = softmax(logits) as Tensor2D;
    const probs = probsTE.dataSync() as Float32Array;
    const choice = new Int32Array(T * k);
    const ranking = opts.softmaxOrder === "after" ? hostLogits : probs;
    for (let t = 0; t < T; t++) topKRow(ranking, t * E, E, k, choice, t * k);
    const sampled = new Uint8Array(T * k).fill(1);
    if (opts.secondExpertSampling && ctx.training && k > 1) {
      for (let t = 0; t < T; t++) {
        const top = probs[t * E + (choice[t * k] as number)] as number;
        for (let j = 1; j < k; j++) {
          const gj = probs[t * E + (choice[t * k + j] as number)] as number;
          if (!(2 * (gj / (top + gj)) > ctx.rng.next())) sampled[t * k + j] = 0;
        }
      }
    }
    host = routeTokenMajor(T, E, k, choice, sampled, probs, mask, opts, ctx, temperature);
    const flat = tensor1d(
      Int32Array.from(choice, (e, p) => Math.floor(p / k) * E + e),
      "int32",
    );
    let weightsTK: Tensor2D;
    if (opts.softmaxOrder === "after") {
      weightsTK = softmax(reshape(gather(reshape(logits, [T * E]), flat), [T, k])) as Tensor2D;
    } else {
      const w = reshape(gather(reshape(probsTE, [T * E]), flat), [T, k]) as Tensor2D;
      weightsTK = opts.renormalize && k > 1 ? (div(w, sum(w, 1, true)) as Tensor2D) : w;
    }
    return routingTensors(host, probsTE, logSumExp(logits, 1) as Tensor1D, weightsTK, mask);
  });
  return assemble(host as HostRouting, T, E, k, tensors);
}

/**
 * Task-level gating (Kudugunta et al. 2021): one gate distribution per task,
 * shared by every token of that task, so all of a task's tokens go to the same
 * top-k experts (and the task's subnetwork can later be extracted).
 *
 * taskLogits: <float32>[N, E] logits per task; ctx.taskIds: <int32>[T].
 * Options as for topKGating (capacity <= 0, dropless, is the usual choice:
 * a task's tokens all land on the same experts).
 */
export function taskGating(
  taskLogits: Tensor2D,
  opts: TopKGatingOptions,
  ctx: RouteContext,
  temperature = 1,
): Routing {
  checkLogits(taskLogits, "taskGating");
  const [N, E] = taskLogits.shape;
  const { k } = opts;
  checkK(k, E, "taskGating");
  const T = ctx.taskIds?.length ?? 0;
  const mask = padMaskOf(ctx, T, "taskGating");
  const ids = checkTaskIds(ctx, T, N, mask, "taskGating");
  const hostLogits = taskLogits.dataSync() as Float32Array;
  checkFinite(hostLogits, E, () => true, "task logit", "taskGating");
  const safeIds = Int32Array.from(ids, (v, t) => (mask[t] ? v : 0));
  let host: HostRouting | undefined;
  const tensors = tidy(() => {
    const probsNE = softmax(taskLogits) as Tensor2D;
    const probsN = probsNE.dataSync() as Float32Array;
    const taskChoice = new Int32Array(N * k);
    const ranking = opts.softmaxOrder === "after" ? hostLogits : probsN;
    for (let i = 0; i < N; i++) topKRow(ranking, i * E, E, k, taskChoice, i * k);
    // Sampling (if enabled) is drawn per task, so a task's tokens stay together.
    const taskSampled = new Uint8Array(N * k).fill(1);
    if (opts.secondExpertSampling && ctx.training && k > 1) {
      for (let i = 0; i < N; i++) {
        const top = probsN[i * E + (taskChoice[i * k] as number)] as number;
        for (let j = 1; j < k; j++) {
          const gj = probsN[i * E + (taskChoice[i * k + j] as number)] as number;
          if (!(2 * (gj / (top + gj)) > ctx.rng.next())) taskSampled[i * k + j] = 0;
        }
      }
    }
    const choice = new Int32Array(T * k);
    const sampled = new Uint8Array(T * k);
    const probs = new Float32Array(T * E);
    for (let t = 0; t < T; t++) {
      const i = safeIds[t] as number;
      choice.set(taskChoice.subarray(i * k, i * k + k), t * k);
      sampled.set(taskSampled.subarray(i * k, i * k + k), t * k);
      probs.set(probsN.subarray(i * E, i * E + E), t * E);
    }
    host = routeTokenMajor(T, E, k, choice, sampled, probs, mask, opts, { ...ctx, numTasks: N }, temperature);
    const idsT = tensor1d(safeIds, "int32");
    const probsTE = gather(probsNE, idsT) as Tensor2D;
    const flat = tensor1d(
      Int32Array.from(choice, (e, p) => (safeIds[Math.floor(p / k)] as number) * E + e),
      "int32",
    );
    let weightsTK: Tensor2D;
    if (opts.softmaxOrder === "after") {
      weightsTK = softmax(reshape(gather(reshape(taskLogits, [N * E]), flat), [T, k])) as Tensor2D;
    } else {
      const w = reshape(gather(reshape(probsNE, [N * E]), flat), [T, k]) as Tensor2D;
      weightsTK = opts.renormalize && k > 1 ? (div(w, sum(w, 1, true)) as Tensor2D) : w;
    }
    const lseT = gather(logSumExp(taskLogits, 1), idsT) as Tensor1D;
    return routingTensors(host, probsTE, lseT, weightsTK, mask);
  });
  return assemble(host as HostRouting, T, E, k, tensors);
}

/**
 * Static task -> expert assignment (a baseline with no gate): task i uses
 * experts (i*K + j) mod E for j < K, each with weight 1/K. No parameters, no losses.
 */
export function staticTaskGating(
  numTasks: number,
  numExperts: number,
  opts: CapacityOptions & { k: number },
  ctx: RouteContext,
): Routing {
  const E = numExperts;
  const { k } = opts;
  checkK(k, E, "staticTaskGating");
  const T = ctx.taskIds?.length ?? 0;
  const mask = padMaskOf(ctx, T, "staticTaskGating");
  const ids = checkTaskIds(ctx, T, numTasks, mask, "staticTaskGating");
  const choice = new Int32Array(T * k);
  const probs = new Float32Array(T * E);
  for (let t = 0; t < T; t++) {
    const i = mask[t] ? (ids[t] as number) : 0;
    for (let j = 0; j < k; j++) {
      const e = (i * k + j) % E;
      choice[t * k + j] = e;
      probs[t * E + e] = 1 / k;
    }
  }
  const host = routeTokenMajor(T, E, k, choice, new Uint8Array(T * k).fill(1), probs, mask, opts, ctx, 1);
  const tensors = tidy(() => ({
    combineWeight: mul(tensor1d(host.keep), 1 / k) as Tensor1D,
    auxLoss: scalar(0),
    zLoss: scalar(0),
  }));
  return assemble(host, T, E, k, tensors);
}

/**
 * Expert-choice routing (Zhou et al. 2022): each expert takes the C tokens
 * with the highest gate probability for it, C = ceil(capacityFactor * T * K / E)
 * with K the average experts per token. Perfect balance by construction, so
 * no aux loss; a token may get 0..E experts.
 *
 * logits: <float32>[T, E]. Pairs are expert-major: p = e*C + r, the r-th pick of e.
 */
export function expertChoiceGating(
  logits: Tensor2D,
  opts: { k: number; capacityFactor: number; minCapacity: number },
  ctx: RouteContext,
  temperature = 1,
): Routing {
  checkLogits(logits, "expertChoiceGating");
  const [T, E] = logits.shape;
  if (!(opts.k > 0))
    throw new RoutingError("INVALID_ARGUMENT", `expertChoiceGating: k must be > 0, got ${opts.k}`);
  if (!(opts.capacityFactor > 0)) {
    throw new RoutingError(
      "INVALID_ARGUMENT",
      `expertChoiceGating: capacityFactor must be > 0 (expert choice has no dropless mode), got ${opts.capacityFactor}`,
    );
  }
  const mask = padMaskOf(ctx, T, "expertChoiceGating");
  const hostLogits = logits.dataSync() as Float32Array;
  checkFinite(hostLogits, E, (t) => mask[t] === 1, "logit", "expertChoiceGating");
  const real: number[] = [];
  for (let t = 0; t < T; t++) if (mask[t]) real.push(t);
  const n = real.length;
  const C = Math.max(opts.minCapacity, Math.ceil((opts.capacityFactor * n * opts.k) / E));
  const P = E * C;
  let h: HostRouting | undefined;
  const tensors = tidy(() => {
    const probsTE = softmax(logits) as Tensor2D;
    const probs = probsTE.dataSync() as Float32Array;
    const token = new Int32Array(P);
    const dest = new Int32Array(P).fill(-1);
    const expert = new Int32Array(P).fill(-1);
    const slot = new Int32Array(P).fill(-1);
    const keep = new Float32Array(P);
    const flatIdx = new Int32Array(P);
    const kept = new Int32Array(E);
    const picked = new Uint8Array(T);
    const order = real.slice();
    for (let e = 0; e < E; e++) {
      order.sort((a, b) => (probs[b * E + e] as number) - (probs[a * E + e] as number) || a - b);
      const take = Math.min(C, n);
      for (let r = 0; r < take; r++) {
        const p = e * C + r;
        const t = order[r] as number;
        token[p] = t;
        dest[p] = p;
        expert[p] = e;
        slot[p] = r;
        keep[p] = 1;
        flatIdx[p] = t * E + e;
        picked[t] = 1;
      }
      kept[e] = take;
    }
    let entropy = 0;
    let unrouted = 0;
    for (const t of real) {
      if (!picked[t]) unrouted++;
      for (let e = 0; e < E; e++) {
        const q = probs[t * E + e] as number;
        if (q > 0) entropy -= (q * Math.log(q)) / Math.max(1, n);
      }
    }
    const metrics: RoutingMetrics = {
      tokens: n,
      capacity: C,
      droppedFraction: 0,
      unroutedFraction: n > 0 ? unrouted / n : 0,
      gateEntropy: entropy,
      unusedExperts: kept.reduce((u, c) => u + (c === 0 ? 1 : 0), 0),
      tokensPerExpert: kept,
      auxLoss: 0,
      zLoss: 0,
      temperature,
    };
    if (ctx.taskIds && ctx.numTasks) {
      const usage = new Int32Array(ctx.numTasks * E);
      for (let p = 0; p < P; p++)
        if (keep[p]) usage[(ctx.taskIds[token[p] as number] as number) * E + (expert[p] as number)]!++;
      metrics.usagePerTask = usage;
    }
    h = {
      capacity: C,
      token,
      dest,
      expert,
      slot,
      dropped: new Uint8Array(P),
      keep,
      counts: kept.slice(),
      kept,
      f: new Float32Array(E),
      metrics,
    };
    const maskT = tensor1d(Float32Array.from(mask));
    const combineWeight = mul(
      gather(reshape(probsTE, [T * E]), tensor1d(flatIdx, "int32")),
      tensor1d(keep),
    ) as Tensor1D;
    const zLoss = mul(sum(mul(square(logSumExp(logits, 1)), maskT)), 1 / Math.max(1, n)) as Scalar;
    return { combineWeight, auxLoss: scalar(0), zLoss };
  });
  return assemble(h as HostRouting, T, E, null, tensors);
}
