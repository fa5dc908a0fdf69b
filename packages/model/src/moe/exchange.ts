import type { Tensor3D } from "@tensorflow/tfjs-core";

/**
 * The all-to-all hook of expert parallelism. The dispatch buffer is laid out
 * [E, C, M] with each destination rank's experts contiguous (rank r owns
 * global experts [r * E_local, (r+1) * E_local)). `toExperts` sends each
 * rank its slice and returns this rank's [E_local, W * C, M] (W = expert-
 * parallel ranks); `fromExperts` is its inverse. Both must be differentiable
 * (each is the other's adjoint). At world size 1 both are the identity.
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
  toExperts(buf: Tensor3D): Tensor3D;
  fromExperts(out: Tensor3D): Tensor3D;
}

/** World size 1: every expert is local; the exchange is the identity. */
export const LOCAL_EXCHANGE: ExpertExchange = {
  worldSize: 1,
  firstExpert: 0,
  toExperts: (buf) => buf,
  fromExperts: (out) => out,
};
