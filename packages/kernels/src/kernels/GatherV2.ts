import { GatherV2, type GatherV2Attrs, util } from "@tensorflow/tfjs-core";

import { cpuKernel, input, type NativeKernel, sizeOf } from "./util.js";

/**
 * Rows of x along `axis` picked by int32 indices: x viewed [outer, axisDim,
 * inner], out [...x.shape[:axis], ...indices.shape, ...x.shape[axis+1:]].
 * batchDims > 0 takes the cpu path. Out-of-range indices raise an error naming them.
 */
export const gatherV2Kernel: NativeKernel = {
  kernelName: GatherV2,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x", GatherV2);
    const indices = input(inputs, "indices", GatherV2);
    const { axis, batchDims } = attrs as unknown as GatherV2Attrs;
    const xv = backend.f32(x);
    const iv = backend.i32(indices);
    if (!xv || !iv || batchDims !== 0) {
      return cpuKernel(GatherV2)({ inputs, backend, ...(attrs ? { attrs } : {}) });
    }
    const ax = util.parseAxisParam(axis, x.shape)[0] as number;
    const outer = sizeOf(x.shape.slice(0, ax));
    const axisDim = x.shape[ax] as number;
    const inner = sizeOf(x.shape.slice(ax + 1));
    const shape = [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)];
    const out = backend.allocF32(sizeOf(shape));
    backend.native.gather(xv, outer, axisDim, inner, iv, out);
    return backend.output(shape, out);
  },
};
