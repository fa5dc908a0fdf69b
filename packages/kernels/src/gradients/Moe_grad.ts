import { type GradConfig, type Tensor, zerosLike } from "@tensorflow/tfjs-core";

import {
  MoeCombine,
  type MoeCombineAttrs,
  MoeDispatch,
  type MoeDispatchAttrs,
  MoePairDot,
} from "../kernel_names.js";
import { runKernel } from "../ops/util.js";

// Dispatch and combine are each other's adjoint; the weight gradient of both is
// the pair-wise dot product of the token-side and buffer-side rows.

export const moeDispatchGradConfig: GradConfig = {
  kernelName: MoeDispatch,
  inputsToSave: ["x", "token", "dest", "weight"],
  gradFunc: (dy, saved) => {
    const [x, token, dest, weight] = saved as [Tensor, Tensor, Tensor, Tensor];
    const dbuf = dy as Tensor;
    const attrs: MoeCombineAttrs = { numTokens: x.shape[0] as number };
    return {
      x: () => runKernel<Tensor>(MoeCombine, { buf: dbuf, token, dest, weight }, attrs as never),
      weight: () => runKernel<Tensor>(MoePairDot, { a: x, b: dbuf, token, dest }),
      token: () => zerosLike(token),
      dest: () => zerosLike(dest),
    };
  },
};

export const moeCombineGradConfig: GradConfig = {
  kernelName: MoeCombine,
  inputsToSave: ["buf", "token", "dest", "weight"],
  gradFunc: (dy, saved) => {
    const [buf, token, dest, weight] = saved as [Tensor, Tensor, Tensor, Tensor];
    const g = dy as Tensor;
    const attrs: MoeDispatchAttrs = { rows: buf.shape[0] as number };
    return {
      buf: () => runKernel<Tensor>(MoeDispatch, { x: g, token, dest, weight }, attrs as never),
      weight: () => runKernel<Tensor>(MoePairDot, { a: g, b: buf, token, dest }),
      token: () => zerosLike(token),
      dest: () => zerosLike(dest),
    };
  },
};
