import { Transpose, type TransposeAttrs } from "@tensorflow/tfjs-core";

import { cpuKernel, input, type NativeKernel, sizeOf } from "./util.js";

/** out[i...] = x[perm(i...)]; contiguous runs are copied with memcpy, the rest in 32x32 tiles. */
export const transposeKernel: NativeKernel = {
  kernelName: Transpose,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x", Transpose);
    const { perm } = attrs as unknown as TransposeAttrs;
    const xv = backend.f32(x);
    if (!xv) return cpuKernel(Transpose)({ inputs, backend, ...(attrs ? { attrs } : {}) });
    const shape = perm.map((p) => x.shape[p] as number);
    const out = backend.allocF32(sizeOf(x.shape));
    backend.native.transpose(xv, x.shape, perm, out);
    return backend.output(shape, out);
  },
};
