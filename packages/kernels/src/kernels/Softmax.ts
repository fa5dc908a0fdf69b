import {
  LogSoftmax,
  type LogSoftmaxAttrs,
  Softmax,
  type SoftmaxAttrs,
  type TensorInfo,
} from "@tensorflow/tfjs-core";

import type { NativeBackend } from "../backend.js";
import { LogSoftmaxTopK, type LogSoftmaxTopKAttrs } from "../kernel_names.js";
import { cpuKernel, input, type NativeKernel, sizeOf } from "./util.js";

/** Row-wise (log-)softmax over the last axis, in one fused pass per row. */
function softmaxLastAxis(backend: NativeBackend, x: TensorInfo, axis: number, log: boolean, kernel: string) {
  const rank = x.shape.length;
  if (axis !== -1 && axis !== rank - 1) {
    throw new Error(`${kernel}: only the last axis is supported, got axis ${axis} for rank ${rank}`);
  }
  const xv = backend.f32(x);
  if (!xv) return null;
  const cols = rank === 0 ? 1 : (x.shape[rank - 1] as number);
  const n = sizeOf(x.shape);
  const out = backend.allocF32(n);
  backend.native.softmax(xv, out, cols === 0 ? 0 : n / cols, cols, log);
  return backend.output(x.shape.slice(), out);
}

export const softmaxKernel: NativeKernel = {
  kernelName: Softmax,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const logits = input(inputs, "logits", Softmax);
    const { dim } = attrs as unknown as SoftmaxAttrs;
    return (
      softmaxLastAxis(backend, logits, dim, false, Softmax) ??
      cpuKernel(Softmax)({ inputs, backend, ...(attrs ? { attrs } : {}) })
    );
  },
};

/**
 * tfjs names a LogSoftmax kernel but its op is composite and no backend
 * implements it; this backend does, and ../ops/log_softmax.ts uses it.
 */
export const logSoftmaxKernel: NativeKernel = {
  kernelName: LogSoftmax,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const logits = input(inputs, "logits", LogSoftmax);
    const { axis } = attrs as unknown as LogSoftmaxAttrs;
    const out = softmaxLastAxis(backend, logits, axis, true, LogSoftmax);
    if (!out) throw new Error(`${LogSoftmax}: logits must be float32, got ${logits.dtype}`);
    return out;
  },
};

export const logSoftmaxTopKKernel: NativeKernel = {
  kernelName: LogSoftmaxTopK,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const logits = input(inputs, "logits", LogSoftmaxTopK);
    const { k, exclude } = attrs as unknown as LogSoftmaxTopKAttrs;
    const xv = backend.f32(logits);
    if (!xv) throw new Error(`${LogSoftmaxTopK}: logits must be float32, got ${logits.dtype}`);
    const [R, V] = logits.shape as [number, number];
    const values = new Float32Array(R * k);
    const indices = new Int32Array(R * k);
    backend.native.logSoftmaxTopK(xv, values, indices, R, V, k, exclude);
    return [backend.output([R, k], values), backend.makeTensorInfo([R, k], "int32", indices)];
  },
};
