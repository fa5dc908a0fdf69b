// Cached (incremental-decoding) attention and the key/value cache append, on
// every backend, against a plain-loop reference and literal values.
import "@tensorflow/tfjs-backend-wasm";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";

import { cachedAttention, KernelError, kvCacheAppend } from "../src/index.js";
import { expectClose, expectNoLeak, NATIVE, nativeAvailable, onBackend, rand, take } from "./helpers.js";

const backends = ["cpu", "wasm", ...(nativeAvailable ? [NATIVE] : [])];

beforeAll(async () => {
  await tf.setBackend("wasm");
  await tf.ready();
  await tf.setBackend(nativeAvailable ? NATIVE : "cpu");
});

/** Plain loops over q [B,T,M], k/v [B,S,M] (first L rows), mask [B,L] or null. */
function reference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  mask: Float32Array | null,
  [B, T, S, L, H, D]: number[],
  causal: boolean,
): Float32Array {
  const M = H! * D!;
  const out = new Float32Array(B! * T! * M);
  for (let b = 0; b < B!; b++)
    for (let t = 0; t < T!; t++)
      for (let h = 0; h < H!; h++) {
        const lim = causal ? L! - T! + t + 1 : L!;
        const s: number[] = [];
        for (let j = 0; j < lim; j++) {
          let dot = 0;
          for (let d = 0; d < D!; d++)
            dot += q[(b * T! + t) * M + h * D! + d]! * k[(b * S! + j) * M + h * D! + d]!;
          s.push(dot / Math.sqrt(D!) + (mask ? mask[b * L! + j]! : 0));
        }
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, x) => a + x, 0);
        for (let d = 0; d < D!; d++) {
          let acc = 0;
          for (let j = 0; j < lim; j++) acc += (e[j]! / z) * v[(b * S! + j) * M + h * D! + d]!;
          out[(b * T! + t) * M + h * D! + d] = acc;
        }
      }
  return out;
}

describe.each(backends)("cachedAttention on the %s backend", (backend) => {
  it("equals a plain-loop reference (padding mask, rows past length ignored)", () =>
    onBackend(backend, () =>
      expectNoLeak(() => {
        const [B, T, S, L, H, D] = [3, 2, 7, 5, 2, 4];
        const M = H * D;
        const qv = rand(B * T * M, 11);
        const kv = rand(B * S * M, 12);
        const vv = rand(B * S * M, 13);
        // Rows past L hold garbage that must not matter.
        for (let b = 0; b < B; b++) for (let i = L * M; i < S * M; i++) kv[b * S * M + i] = 1e6;
        const mv = new Float32Array(B * L);
        mv[1 * L + 4] = -1e9; // sentence 1: last key is padding
        mv[2 * L + 0] = -1e9;
        const q = tf.tensor3d(qv, [B, T, M]);
        const k = tf.tensor3d(kv, [B, S, M]);
        const v = tf.tensor3d(vv, [B, S, M]);
        const mask = tf.tensor4d(mv, [B, 1, 1, L]);
        const got = take(cachedAttention(q, k, v, { heads: H, length: L, mask }));
        expectClose(got, reference(qv, kv, vv, mv, [B, T, S, L, H, D], false), { rtol: 1e-4, atol: 1e-5 });
        const causal = take(cachedAttention(q, k, v, { heads: H, length: L, causal: true }));
        expectClose(causal, reference(qv, kv, vv, null, [B, T, S, L, H, D], true), {
          rtol: 1e-4,
          atol: 1e-5,
        });
        tf.dispose([q, k, v, mask]);
      }),
    ));

  it("literal case: one query, two keys, one head", () =>
    onBackend(backend, () =>
      expectNoLeak(() => {
        // scores (1*1 + 0*0)/sqrt(2) = 0.7071 and 0 -> p = [0.66976, 0.33024]
        const q = tf.tensor3d([1, 0], [1, 1, 2]);
        const k = tf.tensor3d([1, 0, 0, 1], [1, 2, 2]);
        const v = tf.tensor3d([10, 0, 0, 10], [1, 2, 2]);
        const got = take(cachedAttention(q, k, v, { heads: 1, length: 2 }));
        expectClose(got, [6.697615, 3.302385], { rtol: 1e-5 });
        tf.dispose([q, k, v]);
      }),
    ));

  it("incremental decoding over an appended cache equals causal attention over the whole sequence", () =>
    onBackend(backend, () =>
      expectNoLeak(() => {
        const [B, T, H, D] = [2, 6, 2, 3];
        const M = H * D;
        const qv = rand(B * T * M, 21);
        const kv = rand(B * T * M, 22);
        const vv = rand(B * T * M, 23);
        const q = tf.tensor3d(qv, [B, T, M]);
        const k = tf.tensor3d(kv, [B, T, M]);
        const v = tf.tensor3d(vv, [B, T, M]);
        const full = take(cachedAttention(q, k, v, { heads: H, length: T, causal: true }));
        let kc: tf.Tensor3D | null = null;
        let vc: tf.Tensor3D | null = null;
        const steps: Float32Array[] = [];
        for (let t = 0; t < T; t++) {
          const row = (x: tf.Tensor3D) => tf.slice(x, [0, t, 0], [B, 1, M]);
          const [kt, vt, qt] = [row(k), row(v), row(q)];
          const k2: tf.Tensor3D = kvCacheAppend(kc, kt, t, T);
          const v2: tf.Tensor3D = kvCacheAppend(vc, vt, t, T);
          tf.dispose([kt, vt, ...(kc ? [kc] : []), ...(vc ? [vc] : [])]);
          kc = k2;
          vc = v2;
          steps.push(take(cachedAttention(qt, kc, vc, { heads: H, length: t + 1 })));
          qt.dispose();
        }
        tf.dispose([kc!, vc!, q, k, v]);
        for (let t = 0; t < T; t++)
          for (let b = 0; b < B; b++)
            expectClose(
              steps[t]!.subarray(b * M, (b + 1) * M),
              full.subarray((b * T + t) * M, (b * T + t + 1) * M),
              {
                rtol: 1e-5,
                atol: 1e-6,
              },
            );
      }),
    ));

  it("rejects bad shapes and lengths with one clear error", () =>
    onBackend(backend, () => {
      const q = tf.zeros([2, 1, 8]) as tf.Tensor3D;
      const k = tf.zeros([2, 4, 8]) as tf.Tensor3D;
      expect(() => cachedAttention(q, k, k, { heads: 3, length: 2 })).toThrow(/not divisible by heads 3/);
      expect(() => cachedAttention(q, k, k, { heads: 2, length: 5 })).toThrow(/length must be in \[1, 4\]/);
      const m = tf.zeros([2, 3]);
      expect(() => cachedAttention(q, k, k, { heads: 2, length: 2, mask: m })).toThrow(KernelError);
      expect(() => kvCacheAppend(null, q, 4, 4)).toThrow(/exceed the cache capacity 4/);
      tf.dispose([q, k, m]);
    }));
});

describe.runIf(nativeAvailable)("kvCacheAppend on polymoe-native", () => {
  it("preallocates once and writes in place: every step shares one buffer", () =>
    onBackend(NATIVE, () =>
      expectNoLeak(() => {
        const a = tf.tensor3d([1, 2, 3, 4], [2, 1, 2]);
        const b = tf.tensor3d([5, 6, 7, 8], [2, 1, 2]);
        const c1 = kvCacheAppend(null, a, 0, 3);
        const c2 = kvCacheAppend(c1, b, 1, 3);
        expect(c2.shape).toEqual([2, 3, 2]);
        expect(Array.from(c2.dataSync())).toEqual([1, 2, 5, 6, 0, 0, 3, 4, 7, 8, 0, 0]);
        expect(c1.dataSync()).toBe(c2.dataSync()); // the same storage
        c1.dispose();
        expect(Array.from(c2.dataSync()).slice(0, 4)).toEqual([1, 2, 5, 6]); // still alive
        tf.dispose([a, b, c2]);
      }),
    ));
});
