import { Slice, type SliceAttrs, slice_util } from "@tensorflow/tfjs-core";

import { cpuKernel, input, type NativeKernel, sizeOf } from "./util.js";

/**
 * x[begin : begin + size]. Contiguous slices stay zero-copy views (the cpu
 * kernel's subarray); strided ones (column blocks, head splits) are copied
 * natively in runs of contiguous floats — the cpu kernel walks them element
 * by element through a TensorBuffer.
 */
export const sliceKernel: NativeKernel = {
  kernelName: Slice,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x", Slice);
    const { begin, size } = attrs as unknown as SliceAttrs;
    const xv = backend.f32(x);
    const [b, s] = slice_util.parseSliceParams(x as never, begin, size) as [number[], number[]];
    if (!xv || slice_util.isSliceContinous(x.shape, b, s)) {
      return cpuKernel(Slice)({ inputs, backend, ...(attrs ? { attrs } : {}) });
    }
    slice_util.assertParamsValid(x as never, b, s);
    const out = backend.allocF32(sizeOf(s));
    backend.native.slice(xv, x.shape, b, s, out);
    return backend.output(s, out);
  },
};
