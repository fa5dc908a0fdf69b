import type { Tensor, Tensor3D } from "@tensorflow/tfjs-core";

/**
 * What `toExperts` delivers to this rank's experts: the tokens of every source
 * rank, one block of R / W rows per (local expert, source rank), valid rows
 * first in each block.
 */
export interface ExchangedTokens {
  /** <float32>[E_local, R, M], R = W * C' (C' >= C: the group's largest capacity). */
  buf: Tensor3D;
  /**
   * <int32>[E_local, W] valid rows at the start of each (expert, source rank)
   * block; the rest of a block is zero padding. Absent: every row is valid.
   */
  counts?: Int32Array;
}

/**
 * The all-to-all hook of expert parallelism. The dispatch buffer is laid out
 * [E, C, M] with each destination rank's experts contiguous (rank r owns
 * global experts [r * E_local, (r+1) * E_local)). `toExperts` sends each
 * rank its slice and returns this rank's [E_local, W * C, M] (W = expert-
 * parallel ranks); `fromExperts` is its inverse. Both must be differentiable
 * (each is the other's adjoint). At world size 1 both are the identity.
 *
 * `countsE[e]` (optional) says how many of expert e's C slots hold a token
 * (slots fill from 0): an implementation may send only those rows and must
 * report, per (local expert, source rank) block, how many it delivered, so the
 * experts can skip padding. Rows past the count are never read by combine.
 *
 * Shape trace (W ranks, E experts, E_local = E / W, C capacity, M model width):
 *
 * | step              | tensor               | sharded axis            |
 * | ----------------- | -------------------- | ----------------------- |
 * | dispatch          | [E, C, M]            | none (all experts)      |
 * | toExperts         | [E_local, W * C, M]  | experts (over EP ranks) |
 * | experts           | [E_local, W * C, M]  | experts                 |
 * | fromExperts       | [E, C, M]            | none                    |
 */
export interface ExpertExchange {
  /** Expert-parallel ranks (1 = no exchange). */
  readonly worldSize: number;
  /** This rank's first global expert id. */
  readonly firstExpert: number;
  /** buf <float32>[E, C, M], countsE <int32>[E] -> this rank's experts' tokens. */
  toExperts(buf: Tensor3D, countsE?: Int32Array): ExchangedTokens;
  /** out <float32>[E_local, R, M]: the experts' outputs for `sent` -> <float32>[E, C, M]. */
  fromExperts(out: Tensor3D, sent: ExchangedTokens): Tensor3D;
}

/**
 * Builds the exchange of one MoE layer (layers may have different expert
 * counts, hence different first experts per rank). The Transformer calls it
 * once per MoE layer, in order.
 */
export type ExpertExchangeFactory = (layer: { name: string; numExperts: number }) => ExpertExchange;

/** World size 1: every expert is local; the exchange is the identity (counts [E] = [E, 1]). */
export const LOCAL_EXCHANGE: ExpertExchange = {
  worldSize: 1,
  firstExpert: 0,
  toExperts: (buf, countsE) => (countsE ? { buf, counts: countsE } : { buf }),
  fromExperts: (out) => out,
};

/**
 * Tensor slicing of the expert FFNs across a tensor-parallel group of `size`
 * ranks (Megatron's column/row split): rank k holds columns
 * [k F / size, (k+1) F / size) of w1 (and b1) and the same rows of w2; b2 is
 * replicated. Every rank of the group sees the same tokens.
 *
 *   x -> enter(x) -> act(x w1_k + b1_k) w2_k -> reduce(sum over k) + b2
 */
export interface ExpertSlicing {
  readonly size: number;
  readonly rank: number;
  /** Identity forward; the gradient is summed over the group (each slice contributes to dx). */
  enter<T extends Tensor>(x: T): T;
  /** Sum over the group forward (partial products of w2's row slices); identity backward. */
  reduce<T extends Tensor>(y: T): T;
}
