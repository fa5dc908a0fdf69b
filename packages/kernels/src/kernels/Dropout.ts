import { Dropout, type DropoutAttrs } from "../kernel_names.js";
import { input, type NativeKernel, sizeOf } from "./util.js";

export const dropoutKernel: NativeKernel = {
  kernelName: Dropout,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x", Dropout);
    const { rate, seed } = attrs as unknown as DropoutAttrs;
    const xv = backend.f32(x);
    if (!xv) throw new Error(`${Dropout}: x must be float32, got ${x.dtype}`);
    const y = backend.allocF32(sizeOf(x.shape));
    backend.native.dropout(xv, y, rate, seed);
    return backend.output(x.shape.slice(), y);
  },
};
