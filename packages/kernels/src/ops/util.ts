import { engine, getBackend, getKernel, type Tensor } from "@tensorflow/tfjs-core";

import { KernelError } from "../errors.js";

/** True when the active backend implements `kernelName` (else the op runs its composite path). */
export function backendHasKernel(kernelName: string): boolean {
  return getKernel(kernelName, getBackend()) != null;
}

/** Runs a registered kernel through the engine (recorded on the tape, so gradients flow). */
export function runKernel<T extends Tensor | Tensor[]>(
  kernelName: string,
  inputs: Record<string, Tensor>,
  attrs: Record<string, number | boolean | string> = {},
): T {
  // biome-ignore lint/suspicious/noExplicitAny: tfjs's runKernel takes untyped maps.
  return engine().runKernel(kernelName, inputs as any, attrs as any) as unknown as T;
}

export function assertFloat32(x: Tensor, arg: string, op: string): void {
  if (x.dtype !== "float32") {
    throw new KernelError("INVALID_ARGUMENT", `${op}: ${arg} must be float32, got ${x.dtype}`);
  }
}
