import * as tf from "@tensorflow/tfjs-core";
import { expect } from "vitest";

import { ensureGradients, NATIVE_BACKEND_NAME, nativeInfo, registerNativeBackend } from "../src/index.js";

ensureGradients();
const reg = registerNativeBackend();

/** Whether the native addon loaded; when not, native suites are skipped with this reason. */
export const nativeAvailable = reg.ok;
export const nativeSkipReason = reg.ok ? "" : `native addon unavailable: ${reg.reason}`;
/** Suite title suffix that states why a suite was skipped. */
export const skipNote = reg.ok ? "" : ` [skipped: ${nativeSkipReason}]`;

export const NATIVE = NATIVE_BACKEND_NAME;
export { nativeInfo };

// Start on the native backend when it loaded (tfjs initialises synchronously
// for both backends, so setBackend has taken effect when it returns).
void tf.setBackend(reg.ok ? NATIVE_BACKEND_NAME : "cpu");
// Keep the stock cpu backend's "install tfjs-node" hint out of test output.
const cpu = tf.findBackend("cpu") as unknown as { firstUse?: boolean } | undefined;
if (cpu) cpu.firstUse = false;

/** Runs f with `backend` active, then restores the previous backend. */
export function onBackend<T>(backend: string, f: () => T): T {
  const prev = tf.getBackend();
  tf.setBackend(backend);
  try {
    return f();
  } finally {
    tf.setBackend(prev);
  }
}

/** Float32 copy of a tensor's values, and the tensor is disposed. */
export function take(t: tf.Tensor): Float32Array {
  const v = Float32Array.from(t.dataSync() as Float32Array);
  t.dispose();
  return v;
}

/** Deterministic pseudo-random floats in [-scale, scale). */
export function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

/** Elementwise closeness with NaN == NaN and exact infinities. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { rtol = 1e-5, atol = 1e-6 }: { rtol?: number; atol?: number } = {},
): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    if (Number.isNaN(e)) {
      if (!Number.isNaN(a)) expect.fail(`element ${i}: expected NaN, got ${a}`);
      continue;
    }
    if (!Number.isFinite(e)) {
      if (a !== e) expect.fail(`element ${i}: expected ${e}, got ${a}`);
      continue;
    }
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      expect.fail(`element ${i}: expected ${e}, got ${a} (|diff| ${Math.abs(a - e)})`);
    }
  }
}

/** Asserts f leaves no tensors behind (tf.memory().numTensors before and after). */
export function expectNoLeak(f: () => void): void {
  const before = tf.memory().numTensors;
  f();
  expect(tf.memory().numTensors).toBe(before);
}

/** Row-major strides. */
export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = (s[i + 1] as number) * (shape[i + 1] as number);
  return s;
}

export function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Multi-index of flat index i in shape. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d] as number;
    idx[d] = i % n;
    i = Math.floor(i / n);
  }
  return idx;
}

/** NumPy broadcast of two shapes (throws if incompatible). */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`incompatible ${a} ${b}`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Flat index into `shape` (right-aligned, broadcasting) of output multi-index idx. */
export function broadcastIndex(idx: readonly number[], shape: readonly number[]): number {
  const st = strides(shape);
  let off = 0;
  for (let d = 0; d < shape.length; d++) {
    const o = idx[idx.length - shape.length + d] as number;
    if ((shape[d] as number) !== 1) off += o * (st[d] as number);
  }
  return off;
}
