import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setupTestBackends } from "@polymoe/kernels/testing";

export const env = setupTestBackends();
export { assertClose, onBackend } from "@polymoe/kernels/testing";

export const tempDir = (prefix = "offload-") => mkdtempSync(path.join(tmpdir(), prefix));

/** Deterministic uniform values in [-scale/2, scale/2). */
export function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = (s / 4294967296 - 0.5) * scale;
  }
  return a;
}
