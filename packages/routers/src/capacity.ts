import { RoutingError } from "./errors.js";
import type { Rng } from "./rng.js";

/** Who keeps a slot when an expert overflows. */
export type OverflowPolicy = "position" | "random" | "score";

/**
 * Slots per expert: ceil(capacityFactor * tokens * k / experts), at least
 * minCapacity. capacityFactor <= 0 means dropless (returns null: the caller
 * sizes the buffer by the busiest expert).
 */
export function expertCapacity(
  tokens: number,
  numExperts: number,
  k: number,
  capacityFactor: number,
  minCapacity: number,
): number | null {
  if (capacityFactor <= 0) return null;
  return Math.max(minCapacity, Math.ceil((capacityFactor * tokens * k) / numExperts));
}

export interface SlotAssignment {
  /** <int32>[P] slot within the pair's expert, -1 if it did not fit or was not routed. */
  slot: Int32Array;
  /** <int32>[E] routed pairs per expert (before capacity). */
  counts: Int32Array;
  /** <int32>[E] kept pairs per expert. */
  kept: Int32Array;
  /** The capacity used (the busiest expert's count in dropless mode). */
  capacity: number;
}

/**
 * Assigns capacity slots to token-major pairs (p = t * k + choice).
 *
 * expert: <int32>[T * k] chosen expert per pair, -1 = not routed (padding or
 * unsampled). Priority is choice-major — every token's first choice before any
 * second choice (GShard) — and within a choice level:
 * - "position": token order;
 * - "random": a random permutation (Random Token Selection, DeepSpeed-MoE; here for any k);
 * - "score": descending `score` (batch-prioritised routing; score = the token's top gate value).
 * capacity null = dropless.
 */
export function assignSlots(
  expert: Int32Array,
  k: number,
  numExperts: number,
  capacity: number | null,
  policy: OverflowPolicy,
  rng: Rng,
  score?: Float32Array,
): SlotAssignment {
  const P = expert.length;
  if (P % k !== 0)
    throw new RoutingError("SHAPE_MISMATCH", `assignSlots: ${P} pairs is not a multiple of k=${k}`);
  const T = P / k;
  const counts = new Int32Array(numExperts);
  for (let p = 0; p < P; p++) {
    const e = expert[p] as number;
    if (e >= 0) counts[e]!++;
  }
  const cap = capacity ?? Math.max(0, ...counts);
  const order = tokenOrder(T, policy, rng, score);
  const fill = new Int32Array(numExperts);
  const slot = new Int32Array(P).fill(-1);
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < T; i++) {
      const p = (order[i] as number) * k + j;
      const e = expert[p] as number;
      if (e < 0) continue;
      const s = fill[e]!++;
      if (s < cap) slot[p] = s;
    }
  }
  const kept = Int32Array.from(fill, (f) => Math.min(f, cap));
  return { slot, counts, kept, capacity: cap };
}

/** Token visiting order inside one choice level. */
function tokenOrder(T: number, policy: OverflowPolicy, rng: Rng, score?: Float32Array): Int32Array {
  const order = new Int32Array(T);
  for (let i = 0; i < T; i++) order[i] = i;
  if (policy === "random") {
    for (let i = T - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      const tmp = order[i] as number;
      order[i] = order[j] as number;
      order[j] = tmp;
    }
  } else if (policy === "score") {
    if (!score || score.length !== T) {
      throw new RoutingError(
        "INVALID_ARGUMENT",
        `assignSlots: policy 'score' needs one score per token (${T})`,
      );
    }
    // Stable: equal scores keep token order.
    order.sort((a, b) => (score[b] as number) - (score[a] as number) || a - b);
  }
  return order;
}
