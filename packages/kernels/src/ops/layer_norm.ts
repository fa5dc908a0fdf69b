import { add, moments, mul, rsqrt, sub, type Tensor, tidy } from "@tensorflow/tfjs-core";

import { KernelError } from "../errors.js";
import { LayerNorm } from "../kernel_names.js";
import { assertFloat32, backendHasKernel, runKernel } from "./util.js";

/** Composite LayerNorm from tfjs ops (any backend; tfjs differentiates it). */
export function layerNormComposite(x: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): Tensor {
  return tidy(() => {
    const { mean, variance } = moments(x, -1, true);
    return add(mul(mul(sub(x, mean), rsqrt(add(variance, epsilon))), gamma), beta);
  });
}

/**
 * Layer normalisation over the last axis.
 * x: <float32>[..., D]; gamma, beta: <float32>[D]; returns [..., D].
 * Fused forward and backward on the polymoe-native backend (statistics in
 * double precision); a composite of tfjs ops on every other backend.
 */
export function layerNorm<T extends Tensor>(x: T, gamma: Tensor, beta: Tensor, epsilon = 1e-5): T {
  assertFloat32(x, "x", "layerNorm");
  assertFloat32(gamma, "gamma", "layerNorm");
  assertFloat32(beta, "beta", "layerNorm");
  if (x.rank < 1) throw new KernelError("SHAPE_MISMATCH", "layerNorm: x must have rank >= 1, got a scalar");
  const d = x.shape[x.rank - 1] as number;
  for (const [name, t] of [
    ["gamma", gamma],
    ["beta", beta],
  ] as const) {
    if (t.rank !== 1 || t.shape[0] !== d) {
      throw new KernelError(
        "SHAPE_MISMATCH",
        `layerNorm: ${name} must have shape [${d}] (the last dim of x [${x.shape}]), got [${t.shape}]`,
      );
    }
  }
  if (!(epsilon > 0))
    throw new KernelError("INVALID_ARGUMENT", `layerNorm: epsilon must be > 0, got ${epsilon}`);
  if (backendHasKernel(LayerNorm)) return runKernel<T>(LayerNorm, { x, gamma, beta }, { epsilon });
  return layerNormComposite(x, gamma, beta, epsilon) as T;
}
