import { loadAddon, type NativeAddon, type NativeInfo } from "./addon.js";
import { KernelError } from "./errors.js";

/** The loaded addon, or null with no error (check nativeInfo() for why). */
export function nativeAddon(): NativeAddon | null {
  return loadAddon().addon;
}

/** The addon's self-description, or the reason it is unavailable. */
export function nativeInfo(): ({ available: true } & NativeInfo) | { available: false; reason: string } {
  const r = loadAddon();
  if (!r.addon) return { available: false, reason: r.error };
  return { available: true, ...r.addon.info() };
}

/** Changes the native thread budget at run time (OpenMP, OpenBLAS and oneDNN together). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new KernelError("INVALID_ARGUMENT", `setNumThreads: need a positive integer, got ${n}`);
  }
  const addon = nativeAddon();
  if (!addon) throw new KernelError("ADDON_UNAVAILABLE", `setNumThreads: ${loadAddon().error}`);
  addon.setNumThreads(n);
}
