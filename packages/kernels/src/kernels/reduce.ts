import { backend_util, Max, Mean, Min, Prod, Sum, util } from "@tensorflow/tfjs-core";

import { RedOp } from "../native_ops.js";
import { cpuKernel, input, type NativeKernel, sizeOf } from "./util.js";

/**
 * Reductions over any set of axes of a float32 tensor (sums accumulate in
 * double). Max and Min propagate NaN, as the cpu backend does.
 */
function reduceKernel(kernelName: string, op: number, axisAttr: "axis" | "reductionIndices"): NativeKernel {
  return {
    kernelName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const x = input(inputs, "x", kernelName);
      const xv = backend.f32(x);
      if (!xv) return cpuKernel(kernelName)({ inputs, backend, ...(attrs ? { attrs } : {}) });
      const a = (attrs ?? {}) as Record<string, unknown>;
      const axes = util.parseAxisParam(a[axisAttr] as number | number[], x.shape);
      const unique = [...new Set(axes)].sort((p, q) => p - q);
      const keep = x.shape.filter((_, i) => !unique.includes(i));
      const out = backend.allocF32(sizeOf(keep));
      backend.native.reduce(op, xv, x.shape, unique, out);
      const shape = a.keepDims ? backend_util.expandShapeToKeepDim(keep, unique) : keep;
      return backend.output(shape, out);
    },
  };
}

export const reduceKernels: NativeKernel[] = [
  reduceKernel(Sum, RedOp.Sum, "axis"),
  reduceKernel(Mean, RedOp.Mean, "axis"),
  reduceKernel(Max, RedOp.Max, "reductionIndices"),
  reduceKernel(Min, RedOp.Min, "axis"),
  reduceKernel(Prod, RedOp.Prod, "axis"),
];
