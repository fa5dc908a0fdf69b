import {
  Abs,
  Elu,
  Erf,
  Exp,
  LeakyRelu,
  type LeakyReluAttrs,
  Log,
  Neg,
  Reciprocal,
  Relu,
  Relu6,
  Rsqrt,
  Sigmoid,
  Sqrt,
  Square,
  Step,
  type StepAttrs,
  Tanh,
} from "@tensorflow/tfjs-core";

import { UnOp } from "../native_ops.js";
import { cpuKernel, input, type NativeKernel, sizeOf } from "./util.js";

/** Elementwise unary kernels on float32 (other dtypes take the cpu path). */
function unaryKernel(
  kernelName: string,
  op: number,
  alphaOf: (attrs: Record<string, unknown>) => number = () => 0,
): NativeKernel {
  return {
    kernelName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const x = input(inputs, "x", kernelName);
      const xv = backend.f32(x);
      if (!xv) return cpuKernel(kernelName)({ inputs, backend, ...(attrs ? { attrs } : {}) });
      const out = backend.allocF32(sizeOf(x.shape));
      backend.native.unary(op, xv, out, alphaOf((attrs ?? {}) as Record<string, unknown>));
      return backend.output(x.shape.slice(), out);
    },
  };
}

export const unaryKernels: NativeKernel[] = [
  unaryKernel(Relu, UnOp.Relu),
  unaryKernel(Relu6, UnOp.Relu6),
  unaryKernel(Elu, UnOp.Elu),
  unaryKernel(LeakyRelu, UnOp.LeakyRelu, (a) => (a as unknown as LeakyReluAttrs).alpha),
  unaryKernel(Sigmoid, UnOp.Sigmoid),
  unaryKernel(Tanh, UnOp.Tanh),
  unaryKernel(Exp, UnOp.Exp),
  unaryKernel(Log, UnOp.Log),
  unaryKernel(Sqrt, UnOp.Sqrt),
  unaryKernel(Rsqrt, UnOp.Rsqrt),
  unaryKernel(Neg, UnOp.Neg),
  unaryKernel(Square, UnOp.Square),
  unaryKernel(Abs, UnOp.Abs),
  unaryKernel(Reciprocal, UnOp.Reciprocal),
  unaryKernel(Step, UnOp.Step, (a) => (a as unknown as StepAttrs).alpha),
  unaryKernel(Erf, UnOp.Erf),
];
