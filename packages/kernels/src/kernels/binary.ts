import {
  Add,
  backend_util,
  Maximum,
  Minimum,
  Multiply,
  Prelu,
  RealDiv,
  SquaredDifference,
  Sub,
} from "@tensorflow/tfjs-core";

import { BinOp } from "../native_ops.js";
import { cpuKernel, type NativeKernel, sizeOf } from "./util.js";

/**
 * Elementwise binary kernels with NumPy broadcasting on float32 inputs
 * (other dtypes take the cpu path). out = a (op) b, shape broadcast(a, b).
 */
function binaryKernel(kernelName: string, op: number, names: [string, string] = ["a", "b"]): NativeKernel {
  return {
    kernelName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const a = inputs[names[0]];
      const b = inputs[names[1]];
      const av = a && backend.f32(a);
      const bv = b && backend.f32(b);
      if (!a || !b || !av || !bv)
        return cpuKernel(kernelName)({ inputs, backend, ...(attrs ? { attrs } : {}) });
      const shape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      const out = backend.allocF32(sizeOf(shape));
      backend.native.binary(op, av, a.shape, bv, b.shape, out, shape);
      return backend.output(shape, out);
    },
  };
}

export const binaryKernels: NativeKernel[] = [
  binaryKernel(Add, BinOp.Add),
  binaryKernel(Sub, BinOp.Sub),
  binaryKernel(Multiply, BinOp.Mul),
  binaryKernel(RealDiv, BinOp.Div),
  binaryKernel(Maximum, BinOp.Max),
  binaryKernel(Minimum, BinOp.Min),
  binaryKernel(SquaredDifference, BinOp.SquaredDifference),
  binaryKernel(Prelu, BinOp.Prelu, ["x", "alpha"]),
];
