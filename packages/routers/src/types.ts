// Axis legend for this package: T tokens, E experts, C capacity (slots per
// expert), K choices per token, P = routed pairs (T * K for token choice,
// E * C for expert choice), M model width, N tasks.
import type { MoePairs } from "@polymoe/kernels";
import type { Scalar, Tensor1D } from "@tensorflow/tfjs-core";

import type { Rng } from "./rng.js";

/** Per-call inputs besides the token representations. */
export interface RouteContext {
  /** Training uses the train capacity factor, noise and sampling; eval turns them off. */
  training: boolean;
  /** Seeded source of randomness (RTS priorities, second-expert sampling, noise). */
  rng: Rng;
  /** <int32>[T] task id of every token (all tokens of a sentence share it). Task routers require it. */
  taskIds?: Int32Array;
  /** Number of task ids (for usage-per-task metrics and validation). */
  numTasks?: number;
  /** [T] 1 = real token, 0 = padding: padding is not routed and not counted in load statistics. */
  padMask?: Uint8Array;
  /** Global training step, for scheduled gate temperatures. */
  step?: number;
}

/** Statistics of one routing call, as plain numbers (for logs and plots). */
export interface RoutingMetrics {
  /** Non-padding tokens routed. */
  tokens: number;
  capacity: number;
  /** Routed (token, expert) pairs dropped by capacity, over all routed pairs. */
  droppedFraction: number;
  /** Tokens that ended with no expert at all (all their pairs dropped), over all tokens. */
  unroutedFraction: number;
  /** Mean over tokens of the gate distribution's entropy (nats). */
  gateEntropy: number;
  /** Experts that received no token. */
  unusedExperts: number;
  /** <int32>[E] kept pairs per expert. */
  tokensPerExpert: Int32Array;
  /** <int32>[N, E] kept pairs per (task, expert), when task ids were given. */
  usagePerTask?: Int32Array;
  auxLoss: number;
  zLoss: number;
  /** The gate temperature used. */
  temperature: number;
}

/**
 * The one record every router returns. Pairs are token-major (p = t * K + k)
 * for token-choice routers and expert-major for expert choice. Host arrays are
 * plain typed arrays; combineWeight and the losses are tensors on the tape so
 * gradients reach the gate.
 */
export interface Routing {
  numTokens: number;
  numExperts: number;
  /** Slots per expert: buffer rows = numExperts * capacity. */
  capacity: number;
  /** Choices per token (token-choice routers), or null (expert choice: variable per token). */
  k: number | null;
  /** (token, dest) pairs for moeDispatch/moeCombine; dest = expert * capacity + slot, -1 if dropped. */
  pairs: MoePairs;
  /** <int32>[P] expert of each pair (also for dropped pairs; -1 for padding / unsampled pairs). */
  expert: Int32Array;
  /** <int32>[P] slot within the expert's capacity, -1 if dropped. */
  slot: Int32Array;
  /** <uint8>[P] 1 where the pair was routed but did not fit (or was not sampled). */
  dropped: Uint8Array;
  /** <float32>[P] combine weight of each pair, 0 for dropped pairs (differentiable). */
  combineWeight: Tensor1D;
  /** <int32>[E] pairs routed to each expert before capacity was applied. */
  counts: Int32Array;
  /** Load-balancing loss E * sum_e f_e P_e (already unscaled by any coefficient). */
  auxLoss: Scalar;
  /** Router z-loss: mean over tokens of logsumexp(logits)^2. */
  zLoss: Scalar;
  metrics: RoutingMetrics;
}
