import { PadV2, type PadV2Attrs } from "@tensorflow/tfjs-core";

import { cpuKernel, input, type NativeKernel, sizeOf } from "./util.js";

/** Constant padding: paddings[d] = [before, after] elements of constantValue around x. */
export const padV2Kernel: NativeKernel = {
  kernelName: PadV2,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x", PadV2);
    const { paddings, constantValue } = attrs as unknown as PadV2Attrs;
    const xv = backend.f32(x);
    if (!xv) return cpuKernel(PadV2)({ inputs, backend, ...(attrs ? { attrs } : {}) });
    const before = paddings.map((p) => p[0]);
    const after = paddings.map((p) => p[1]);
    const shape = x.shape.map((d, i) => (before[i] as number) + d + (after[i] as number));
    const out = backend.allocF32(sizeOf(shape));
    backend.native.pad(xv, x.shape, before, after, constantValue, out);
    return backend.output(shape, out);
  },
};
