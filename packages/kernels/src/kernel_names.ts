// PolyMoE's own kernel names and their input/attribute types, in tfjs's
// kernel-registry style (tfjs-core/src/kernel_names.ts). Each kernel has a
// native implementation on the polymoe-native backend; the op that calls it
// (../ops) runs an equivalent composite of tfjs ops on every other backend.
import type { NamedTensorInfoMap } from "@tensorflow/tfjs-core";

/** y = x * Phi(x), exact (erf) GELU. */
export const Gelu = "polymoe.Gelu";
export type GeluInputs = Pick<NamedTensorInfoMap, "x">;

/** dx = dy * GELU'(x). */
export const GeluGrad = "polymoe.GeluGrad";
export type GeluGradInputs = Pick<NamedTensorInfoMap, "dy" | "x">;

/** y = (x - mean) / sqrt(var + epsilon) * gamma + beta over the last axis. */
export const LayerNorm = "polymoe.LayerNorm";
export type LayerNormInputs = Pick<NamedTensorInfoMap, "x" | "gamma" | "beta">;
export interface LayerNormAttrs {
  epsilon: number;
}

/** [dx, dgamma, dbeta] of LayerNorm; recomputes the row statistics from x. */
export const LayerNormGrad = "polymoe.LayerNormGrad";
export type LayerNormGradInputs = Pick<NamedTensorInfoMap, "dy" | "x" | "gamma">;
export type LayerNormGradAttrs = LayerNormAttrs;
