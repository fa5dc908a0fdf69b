import {
  BatchMatMul,
  type BatchMatMulAttrs,
  backend_util,
  type GradConfig,
  matMul,
  reshape,
  sum,
  type Tensor,
} from "@tensorflow/tfjs-core";

/** Sums a gradient over the dims that were broadcast, back to the input's shape. */
function reduceTo(g: Tensor, shape: number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const axes = backend_util.getReductionAxes(shape, g.shape);
  return reshape(axes.length > 0 ? sum(g, axes) : g, shape);
}

/**
 * Gradient of BatchMatMul with NumPy-broadcast batch dims. Replaces the one
 * @tensorflow/tfjs registers, which returns un-reduced gradients whenever the
 * batch dims differ ([B,M,K] x [K,N], or [2,1,..] x [1,4,..]) and so fails in
 * backprop. Identical to it when the batch dims agree.
 */
export const batchMatMulGradConfig: GradConfig = {
  kernelName: BatchMatMul,
  inputsToSave: ["a", "b"],
  gradFunc: (dy, saved, attrs) => {
    const [a, b] = saved as [Tensor, Tensor];
    const g = dy as Tensor;
    const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
    let da: () => Tensor;
    let db: () => Tensor;
    if (!transposeA && !transposeB) {
      da = () => matMul(g, b, false, true);
      db = () => matMul(a, g, true, false);
    } else if (!transposeA && transposeB) {
      da = () => matMul(g, b, false, false);
      db = () => matMul(g, a, true, false);
    } else if (transposeA && !transposeB) {
      da = () => matMul(b, g, false, true);
      db = () => matMul(a, g, false, false);
    } else {
      da = () => matMul(b, g, true, true);
      db = () => matMul(g, a, true, true);
    }
    return { a: () => reduceTo(da(), a.shape), b: () => reduceTo(db(), b.shape) };
  },
};
