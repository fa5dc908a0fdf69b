// Test utilities for PolyMoE packages (exported as "@polymoe/kernels/testing").
// Framework-agnostic: failures throw plain Errors with the element and values.
import * as tf from "@tensorflow/tfjs-core";

import { NATIVE_BACKEND_NAME } from "./backend.js";
import { ensureGradients, registerNativeBackend } from "./register.js";

export interface TestBackends {
  /** Whether the native addon loaded. */
  nativeAvailable: boolean;
  /** Why native suites are skipped ("" when available). */
  skipReason: string;
  /** Suffix for suite titles: " [skipped: native addon unavailable: ...]" or "". */
  skipNote: string;
  /** Backends every op suite should run on: cpu, plus native when available. */
  backends: string[];
}

let setup: TestBackends | undefined;

/**
 * Registers gradients and the native backend (when it loads), makes native
 * (else cpu) the active backend, and silences the cpu backend's tfjs-node hint.
 * Idempotent.
 */
export function setupTestBackends(): TestBackends {
  if (setup) return setup;
  ensureGradients();
  const reg = registerNativeBackend();
  void tf.setBackend(reg.ok ? NATIVE_BACKEND_NAME : "cpu");
  const cpu = tf.findBackend("cpu") as unknown as { firstUse?: boolean } | undefined;
  if (cpu) cpu.firstUse = false;
  const skipReason = reg.ok ? "" : `native addon unavailable: ${reg.reason}`;
  setup = {
    nativeAvailable: reg.ok,
    skipReason,
    skipNote: reg.ok ? "" : ` [skipped: ${skipReason}]`,
    backends: reg.ok ? ["cpu", NATIVE_BACKEND_NAME] : ["cpu"],
  };
  return setup;
}

/**
 * Runs f with `backend` active (synchronously initialised backends), then
 * restores the previous one — after the returned promise settles, when f is
 * async (restoring at the first await would run the rest on another backend).
 */
export function onBackend<T>(backend: string, f: () => T): T {
  const prev = tf.getBackend();
  void tf.setBackend(backend);
  let result: T;
  try {
    result = f();
  } catch (e) {
    void tf.setBackend(prev);
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => {
      void tf.setBackend(prev);
    }) as T;
  }
  void tf.setBackend(prev);
  return result;
}

/** A float32 copy of a tensor's values; the tensor is disposed. */
export function take(t: tf.Tensor): Float32Array {
  const v = Float32Array.from(t.dataSync() as Float32Array);
  t.dispose();
  return v;
}

/** Deterministic pseudo-random floats in [-scale, scale) (xorshift32). */
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

/** Throws unless |a - e| <= atol + rtol |e| elementwise; NaN equals NaN, infinities must match. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { rtol = 1e-5, atol = 1e-6, what = "value" }: { rtol?: number; atol?: number; what?: string } = {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    if (Number.isNaN(e)) {
      if (!Number.isNaN(a)) throw new Error(`${what}[${i}]: expected NaN, got ${a}`);
      continue;
    }
    if (!Number.isFinite(e)) {
      if (a !== e) throw new Error(`${what}[${i}]: expected ${e}, got ${a}`);
      continue;
    }
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      throw new Error(`${what}[${i}]: expected ${e}, got ${a} (|diff| ${Math.abs(a - e)})`);
    }
  }
}

/** Runs f and throws if it changed tf.memory().numTensors (a leak, or a double dispose). */
export function assertNoLeak<T>(f: () => T): T {
  const before = tf.memory().numTensors;
  const out = f();
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`leaked ${after - before} tensor(s)`);
  return out;
}

/**
 * Central finite differences of a scalar function of one float64 parameter
 * vector (computed in float32 through tfjs): d f / d params[i] for the listed
 * indices. Use on small problems with eps ~ 1e-2 (float32 round-off).
 */
export function finiteDifferences(
  f: (params: Float32Array) => number,
  params: Float32Array,
  indices: readonly number[],
  eps = 1e-2,
): Float64Array {
  const out = new Float64Array(indices.length);
  indices.forEach((i, j) => {
    const p = Float32Array.from(params);
    p[i] = (params[i] as number) + eps;
    const up = f(p);
    p[i] = (params[i] as number) - eps;
    const down = f(p);
    out[j] = (up - down) / (2 * eps);
  });
  return out;
}
