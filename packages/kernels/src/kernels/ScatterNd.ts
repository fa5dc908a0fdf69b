import { ScatterNd, type ScatterNdAttrs } from "@tensorflow/tfjs-core";

import { cpuKernel, input, type NativeKernel, sizeOf } from "./util.js";

/**
 * Scatter-add of update slices into zeros of `shape`: indices [..., R] int32
 * address the first R dims, updates [..., ...shape[R:]]. Duplicates add.
 */
export const scatterNdKernel: NativeKernel = {
  kernelName: ScatterNd,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const indices = input(inputs, "indices", ScatterNd);
    const updates = input(inputs, "updates", ScatterNd);
    const { shape } = attrs as unknown as ScatterNdAttrs;
    const iv = backend.i32(indices);
    const uv = backend.f32(updates);
    if (!iv || !uv || indices.shape.length < 1) {
      return cpuKernel(ScatterNd)({ inputs, backend, ...(attrs ? { attrs } : {}) });
    }
    const sliceRank = indices.shape[indices.shape.length - 1] as number;
    const n = sizeOf(indices.shape.slice(0, -1));
    const sliceSize = sizeOf(shape.slice(sliceRank));
    if (uv.length !== n * sliceSize) {
      throw new Error(
        `scatterND: updates of shape [${updates.shape}] do not hold ${n} slices of ${sliceSize} ` +
          `elements for indices [${indices.shape}] into shape [${shape}]`,
      );
    }
    const out = backend.allocF32(sizeOf(shape));
    backend.native.scatterNd(iv, uv, n, sliceSize, shape.slice(0, sliceRank), out);
    return backend.output(shape.slice(), out);
  },
};
