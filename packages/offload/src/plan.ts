// The scale planner: parameters of a PolyMoE Transformer from its config
// (exact: the same layout @polymoe/model builds), and the memory of each
// tier — device, host, disk — for a parallel/ZeRO/offload strategy, with the
// communication per step and the largest model (in experts per MoE layer)
// each strategy can train. DeepSpeed-style accounting (ZeRO paper, sec. 3):
// mixed precision keeps 2-byte parameters and gradients and 12 bytes of
// optimizer state per parameter (fp32 master, m, v); fp32 training (PolyMoE
// on CPU) keeps 4 + 4 and 8 (m, v; the parameters are the master weights).
import { ModelConfig, type ModelConfigInput, moeLayerIndices } from "@polymoe/model";
import { parseConfig } from "@polymoe/schema";

import { OffloadError } from "./errors.js";

/** Parameters by group. */
export interface ParameterCount {
  total: number;
  /** Expert FFN weights and biases (sharded over expert-parallel ranks). */
  expert: number;
  /** Everything else (replicated over data-parallel ranks). */
  dense: number;
  /** Expert parameters that one more expert in every MoE layer adds. */
  perExpert: number;
  /** MoE layers, and the experts of each. */
  moeLayers: number;
  experts: number[];
}

/** Exact parameter count of the Transformer @polymoe/model builds for `config`. */
export function countParameters(input: ModelConfigInput | ModelConfig): ParameterCount {
  const c = parseConfig(ModelConfig, input, { prefix: "model" });
  const d = c.dModel;
  const lin = (i: number, o: number) => i * o + o;
  const norm = 2 * d;
  let dense = c.vocabSize * d + (c.positions === "learned" ? c.maxLength * d : 0);
  let expert = 0;
  let perExpert = 0;
  const experts: number[] = [];
  for (const stack of ["encoder", "decoder"] as const) {
    const n = stack === "encoder" ? c.encoderLayers : c.decoderLayers;
    const placement = c.moe?.[stack];
    const moeAt = moeLayerIndices(placement, n);
    for (let i = 0; i < n; i++) {
      dense += 2 * norm + lin(d, 3 * d) + lin(d, d); // ln1, ln2, self-attention
      if (stack === "decoder") dense += norm + lin(d, d) + lin(d, 2 * d) + lin(d, d); // lnCross, cross-attention
      const m = moeAt.indexOf(i);
      if (placement && m >= 0) {
        const E = Array.isArray(placement.numExperts)
          ? (placement.numExperts[m] as number)
          : placement.numExperts;
        const F = placement.dFF ?? c.dFF;
        const one = 2 * d * F + (placement.expertBias ? F + d : 0);
        experts.push(E);
        expert += E * one;
        perExpert += one;
        const r = placement.router;
        const noisy = "noise" in r && r.noise.type === "noisy-topk" ? 2 : 1;
        if (r.type === "task") dense += r.numTasks * r.taskEmbedDim + noisy * r.taskEmbedDim * E;
        else if (r.type === "topk" || r.type === "expert-choice") dense += noisy * d * E;
        if (placement.residual) dense += lin(d, F) + lin(F, d) + 2 * d;
      } else {
        const F = c.ffnWidths?.[stack]?.[String(i)] ?? c.dFF;
        dense += lin(d, F) + lin(F, d);
      }
    }
  }
  dense += (c.encoderLayers > 0 ? norm : 0) + norm;
  return { total: dense + expert, expert, dense, perExpert, moeLayers: experts.length, experts };
}

export interface Strategy {
  /** Devices in total (accelerators, or processes on CPU). */
  devices: number;
  /** Expert-parallel degree (experts sharded over this many devices). */
  ep: number;
  /** ZeRO stage: 0 none, 1 optimizer state, 2 + gradients, 3 + parameters partitioned. */
  zero: 0 | 1 | 2 | 3;
  /** Where optimizer state (and master weights) live. */
  offload: "none" | "host" | "disk";
  /** fp16: 2-byte params/grads, 12-byte state; fp32: 4 + 4 and 8. */
  precision: "fp16" | "fp32";
  /** Devices per host (share its memory). */
  devicesPerHost: number;
  /** Tokens per device per micro-batch, and their sequence length (activations, all-to-all). */
  tokens: number;
  seqLen: number;
}

/** Bytes per device (device tier), per host and on disk, and communication per step per device. */
export interface MemoryPlan {
  params: ParameterCount;
  device: { parameters: number; gradients: number; optimizer: number; activations: number; total: number };
  host: { optimizer: number; total: number };
  disk: { optimizer: number };
  /** Bytes each device sends per step. */
  communication: { allToAll: number; allReduce: number; allGather: number };
}

/**
 * Memory per tier for `config` under `s`. Activations: the Megatron estimate
 * (Korthikanti et al. 2022) of 34·d + 5·heads·seq bytes per token per layer at
 * fp16, doubled at fp32, no recomputation.
 */
export function planMemory(input: ModelConfigInput | ModelConfig, s: Strategy): MemoryPlan {
  const c = parseConfig(ModelConfig, input, { prefix: "model" });
  if (s.devices % s.ep !== 0) {
    throw new OffloadError("INVALID_ARGUMENT", `plan: --ep ${s.ep} must divide --devices ${s.devices}`);
  }
  const p = countParameters(c);
  const bp = s.precision === "fp16" ? 2 : 4;
  const bs = s.precision === "fp16" ? 12 : 8;
  const dp = s.devices; // dense parameters: data parallel over every device
  const edp = s.devices / s.ep; // experts: data parallel over the replicas of each shard
  const denseLocal = p.dense;
  const expertLocal = p.expert / s.ep;
  const shard = (x: number, over: number, on: boolean) => (on ? x / over : x);
  const parameters = bp * (shard(denseLocal, dp, s.zero >= 3) + shard(expertLocal, edp, s.zero >= 3));
  const gradients = bp * (shard(denseLocal, dp, s.zero >= 2) + shard(expertLocal, edp, s.zero >= 2));
  const optimizer = bs * (shard(denseLocal, dp, s.zero >= 1) + shard(expertLocal, edp, s.zero >= 1));
  const layers = c.encoderLayers + c.decoderLayers;
  const activations =
    (s.precision === "fp16" ? 1 : 2) * layers * s.tokens * (34 * c.dModel + 5 * c.heads * s.seqLen);
  const onDevice = s.offload === "none" ? optimizer : 0;
  const device = {
    parameters,
    gradients,
    optimizer: onDevice,
    activations,
    total: parameters + gradients + onDevice + activations,
  };
  const hostOpt = s.offload === "host" ? optimizer * s.devicesPerHost : 0;
  const disk = { optimizer: s.offload === "disk" ? optimizer * s.devicesPerHost : 0 };
  // Ring all-reduce sends 2 (n-1)/n of the gradients; ZeRO-3 adds the parameter all-gathers (fwd + bwd).
  const ring = (x: number, n: number) => (n > 1 ? (2 * (n - 1) * x) / n : 0);
  const allReduce = bp * (ring(denseLocal, dp) + ring(expertLocal, edp));
  const allGather =
    s.zero >= 3 ? 2 * bp * (((dp - 1) / dp) * denseLocal + ((edp - 1) / edp) * expertLocal) : 0;
  // All-to-all: per MoE layer each token's k slots go out and come back, forward and backward.
  const k = 2;
  const allToAll = s.ep > 1 ? p.moeLayers * 4 * k * s.tokens * c.dModel * bp * ((s.ep - 1) / s.ep) : 0;
  return {
    params: p,
    device,
    host: { optimizer: hostOpt, total: hostOpt },
    disk,
    communication: { allToAll, allReduce, allGather },
  };
}

/**
 * The most experts per MoE layer (same for every layer) with which `config`
 * fits `deviceBytes` per device and `hostBytes` per host under `s`, and its
 * parameter count; null when not even one expert fits.
 */
export function largestTrainable(
  input: ModelConfigInput | ModelConfig,
  s: Strategy,
  deviceBytes: number,
  hostBytes: number,
): { experts: number; params: number } | null {
  const c = ModelConfig.parse(input);
  const withE = (E: number): ModelConfig => ({
    ...c,
    moe: {
      ...(c.moe?.encoder ? { encoder: { ...c.moe.encoder, numExperts: E } } : {}),
      ...(c.moe?.decoder ? { decoder: { ...c.moe.decoder, numExperts: E } } : {}),
    },
  });
  const fits = (E: number) => {
    const m = planMemory(withE(E), s);
    return m.device.total <= deviceBytes && m.host.total <= hostBytes;
  };
  const lo0 = s.ep;
  if (!c.moe || !fits(lo0)) return null;
  // Memory grows linearly in E: double, then bisect (in multiples of ep).
  let lo = lo0;
  let hi = lo0 * 2;
  while (fits(hi) && hi < 2 ** 40) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > s.ep) {
    const mid = Math.floor((lo + hi) / 2 / s.ep) * s.ep;
    if (mid <= lo) break;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return { experts: lo, params: countParameters(withE(lo)).total };
}
