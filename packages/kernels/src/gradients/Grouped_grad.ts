import { type GradConfig, type Tensor, zerosLike } from "@tensorflow/tfjs-core";

import { GroupedMatMul, type GroupedMatMulAttrs, GroupedMatMulGradW } from "../kernel_names.js";
import { runKernel } from "../ops/util.js";

// y = x op(w) + b over segments. dx reuses the forward kernel with the weight
// read the other way round (uncovered rows get zero gradient, as they got zero
// output); dw and db come from one pass over each expert's rows. Computed when
// tfjs asks for the node's gradients, then handed out (like LayerNorm's).
export const groupedMatMulGradConfig: GradConfig = {
  kernelName: GroupedMatMul,
  inputsToSave: ["x", "w", "segments"],
  gradFunc: (dy, saved, attrs) => {
    const [x, w, segments] = saved as [Tensor, Tensor, Tensor];
    const { transposeW } = attrs as unknown as GroupedMatMulAttrs;
    const g = dy as Tensor;
    const numExperts = w.shape[0] as number;
    // x [R, K], g [R, N]: dw = x^T g ([E, K, N]); transposed storage wants g^T x ([E, N, K]).
    const [dw, db] = runKernel<Tensor[]>(
      GroupedMatMulGradW,
      transposeW ? { a: g, g: x, segments } : { a: x, g, segments },
      { numExperts },
    ) as [Tensor, Tensor];
    const dx = runKernel<Tensor>(GroupedMatMul, { x: g, w, segments }, { transposeW: !transposeW });
    return {
      x: () => dx,
      w: () => dw,
      // The op accepts a bias only with transposeW false, where db is the sum of g's rows.
      bias: () => db,
      segments: () => zerosLike(segments),
    };
  },
};
