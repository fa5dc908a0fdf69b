import { Gelu, GeluGrad } from "../kernel_names.js";
import { UnOp } from "../native_ops.js";
import { input, type NativeKernel, sizeOf } from "./util.js";

export const geluKernel: NativeKernel = {
  kernelName: Gelu,
  kernelFunc: ({ inputs, backend }) => {
    const x = input(inputs, "x", Gelu);
    const xv = backend.f32(x);
    if (!xv) throw new Error(`gelu: x must be float32, got ${x.dtype}`);
    const out = backend.allocF32(sizeOf(x.shape));
    backend.native.unary(UnOp.Gelu, xv, out, 0);
    return backend.output(x.shape.slice(), out);
  },
};

export const geluGradKernel: NativeKernel = {
  kernelName: GeluGrad,
  kernelFunc: ({ inputs, backend }) => {
    const dy = input(inputs, "dy", GeluGrad);
    const x = input(inputs, "x", GeluGrad);
    const dyv = backend.f32(dy);
    const xv = backend.f32(x);
    if (!dyv || !xv) throw new Error("geluGrad: dy and x must be float32");
    const out = backend.allocF32(sizeOf(x.shape));
    backend.native.geluGrad(dyv, xv, out);
    return backend.output(x.shape.slice(), out);
  },
};
