import {
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type TensorInfo,
} from "@tensorflow/tfjs-core";

import type { NativeBackend } from "../backend.js";

/** A kernel of the native backend: like tfjs's KernelConfig without the backend name. */
export interface NativeKernel {
  kernelName: string;
  kernelFunc: (args: {
    inputs: NamedTensorInfoMap;
    backend: NativeBackend;
    attrs?: NamedAttrMap;
  }) => TensorInfo | TensorInfo[];
}

/**
 * The stock cpu kernel of the same name: the path for dtypes and attribute
 * combinations the native code does not cover (int32 arithmetic, complex, ...).
 */
export function cpuKernel(kernelName: string): KernelFunc {
  const config: KernelConfig | undefined = getKernel(kernelName, "cpu");
  if (!config) throw new Error(`the cpu backend has no kernel '${kernelName}'`);
  return config.kernelFunc;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Looks up a required input, with a message naming the kernel and input. */
export function input(inputs: NamedTensorInfoMap, name: string, kernel: string): TensorInfo {
  const t = inputs[name];
  if (!t) throw new Error(`${kernel}: missing input '${name}'`);
  return t;
}
