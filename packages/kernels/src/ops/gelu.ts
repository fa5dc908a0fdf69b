import { add, erf, mul, type Tensor, tidy } from "@tensorflow/tfjs-core";

import { Gelu } from "../kernel_names.js";
import { assertFloat32, backendHasKernel, runKernel } from "./util.js";

/** Composite exact GELU from tfjs ops (any backend; tfjs differentiates it). */
export function geluComposite(x: Tensor): Tensor {
  return tidy(() => mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1)));
}

/**
 * Exact (erf) GELU, x * Phi(x), elementwise on float32 of any shape.
 * One native pass on the polymoe-native backend; a tfjs-ops composite elsewhere.
 */
export function gelu<T extends Tensor>(x: T): T {
  assertFloat32(x, "x", "gelu");
  if (backendHasKernel(Gelu)) return runKernel<T>(Gelu, { x });
  return geluComposite(x) as T;
}
