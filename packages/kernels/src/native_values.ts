import { backend, getBackend, type Tensor } from "@tensorflow/tfjs-core";

import { NATIVE_BACKEND_NAME, type NativeBackend } from "./backend.js";

/**
 * The Float32Array behind a float32 tensor on the polymoe-native backend
 * (zero-copy), or null when the active backend is another one. Writing into
 * it changes the tensor in place — and every tensor sharing its data (clones,
 * reshapes); optimizers use this for in-place parameter updates.
 */
export function experimental_nativeValues(t: Tensor): Float32Array | null {
  if (getBackend() !== NATIVE_BACKEND_NAME || t.dtype !== "float32") return null;
  return (backend() as unknown as NativeBackend).f32(t);
}
