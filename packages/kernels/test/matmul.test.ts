import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { nativeAddon } from "../src/index.js";
import {
  broadcastIndex,
  broadcastShape,
  expectClose,
  expectNoLeak,
  NATIVE,
  nativeAvailable,
  onBackend,
  rand,
  size,
  skipNote,
  take,
  unravel,
} from "./helpers.js";

interface Case {
  a: number[];
  b: number[];
  ta: boolean;
  tb: boolean;
}

/** Plain-loop reference (float64 accumulation) with two-sided batch broadcasting. */
function refMatMul(a: Float32Array, c: Case, b: Float32Array) {
  const ra = c.a.length;
  const rb = c.b.length;
  const M = c.ta ? c.a[ra - 1]! : c.a[ra - 2]!;
  const K = c.ta ? c.a[ra - 2]! : c.a[ra - 1]!;
  const N = c.tb ? c.b[rb - 2]! : c.b[rb - 1]!;
  const aB = c.a.slice(0, -2);
  const bB = c.b.slice(0, -2);
  const oB = broadcastShape(aB, bB);
  const out = new Float64Array(size(oB) * M * N);
  const aIdx = (bi: number[], m: number, k: number) =>
    broadcastIndex(bi, aB) * M * K + (c.ta ? k * M + m : m * K + k);
  const bIdx = (bi: number[], k: number, n: number) =>
    broadcastIndex(bi, bB) * K * N + (c.tb ? n * K + k : k * N + n);
  for (let o = 0; o < size(oB); o++) {
    const bi = unravel(o, oB);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[aIdx(bi, m, k)]! * b[bIdx(bi, k, n)]!;
        out[(o * M + m) * N + n] = s;
      }
  }
  return { out, shape: [...oB, M, N], M, N, K, oB, aIdx, bIdx };
}

/** Reference gradients of sum(w * matMul(a, b)) by the same loops. */
function refGrads(a: Float32Array, c: Case, b: Float32Array, w: Float32Array) {
  const r = refMatMul(a, c, b);
  const da = new Float64Array(a.length);
  const db = new Float64Array(b.length);
  for (let o = 0; o < size(r.oB); o++) {
    const bi = unravel(o, r.oB);
    for (let m = 0; m < r.M; m++)
      for (let n = 0; n < r.N; n++) {
        const g = w[(o * r.M + m) * r.N + n]!;
        for (let k = 0; k < r.K; k++) {
          da[r.aIdx(bi, m, k)]! += g * b[r.bIdx(bi, k, n)]!;
          db[r.bIdx(bi, k, n)]! += g * a[r.aIdx(bi, m, k)]!;
        }
      }
  }
  return { da, db };
}

const CASES: Case[] = [];
for (const ta of [false, true])
  for (const tb of [false, true]) {
    const shapeA = (batch: number[], M: number, K: number) => [...batch, ...(ta ? [K, M] : [M, K])];
    const shapeB = (batch: number[], K: number, N: number) => [...batch, ...(tb ? [N, K] : [K, N])];
    CASES.push({ a: shapeA([], 1, 1), b: shapeB([], 1, 1), ta, tb });
    CASES.push({ a: shapeA([], 7, 13), b: shapeB([], 13, 5), ta, tb });
    CASES.push({ a: shapeA([3], 4, 6), b: shapeB([3], 6, 2), ta, tb });
    CASES.push({ a: shapeA([2, 1], 3, 4), b: shapeB([1, 4], 4, 5), ta, tb }); // two-sided broadcast
    CASES.push({ a: shapeA([5], 3, 4), b: shapeB([], 4, 2), ta, tb }); // rank-3 x rank-2
    CASES.push({ a: shapeA([], 3, 4), b: shapeB([2, 3], 4, 2), ta, tb }); // rank-2 x rank-4
    CASES.push({ a: shapeA([2], 65, 33), b: shapeB([2], 33, 70), ta, tb }); // BLAS-sized, odd
  }

const name = (c: Case) => `[${c.a}]${c.ta ? "ᵀ" : ""} x [${c.b}]${c.tb ? "ᵀ" : ""}`;

describe.skipIf(!nativeAvailable)(`BatchMatMul (native)${skipNote}`, () => {
  it.each(CASES.map((c) => [name(c), c] as const))("forward %s matches plain loops", (_, c) => {
    const av = rand(size(c.a), 1);
    const bv = rand(size(c.b), 2);
    const ref = refMatMul(av, c, bv);
    onBackend(NATIVE, () =>
      expectNoLeak(() => {
        const a = tf.tensor(av, c.a);
        const b = tf.tensor(bv, c.b);
        const out = tf.matMul(a, b, c.ta, c.tb);
        expect(out.shape).toEqual(ref.shape);
        expectClose(take(out), ref.out, { rtol: 1e-5, atol: 1e-5 });
        a.dispose();
        b.dispose();
      }),
    );
  });

  it.each(CASES.map((c) => [name(c), c] as const))("gradient %s matches plain loops", (_, c) => {
    const av = rand(size(c.a), 3);
    const bv = rand(size(c.b), 4);
    const ref0 = refMatMul(av, c, bv);
    const w = rand(ref0.out.length, 5);
    const ref = refGrads(av, c, bv, w);
    onBackend(NATIVE, () =>
      expectNoLeak(() => {
        const a = tf.tensor(av, c.a);
        const b = tf.tensor(bv, c.b);
        const wt = tf.tensor(w, ref0.shape);
        const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) =>
          tf.sum(tf.mul(tf.matMul(x, y, c.ta, c.tb), wt)),
        )([a, b]);
        expect(da!.shape).toEqual(c.a);
        expect(db!.shape).toEqual(c.b);
        expectClose(take(da!), ref.da, { rtol: 1e-4, atol: 1e-5 });
        expectClose(take(db!), ref.db, { rtol: 1e-4, atol: 1e-5 });
        tf.dispose([a, b, wt]);
      }),
    );
  });

  it("the stock cpu kernel gets two-sided broadcasting wrong (why it is not the oracle)", () => {
    const c: Case = { a: [2, 1, 2, 2], b: [1, 2, 2, 2], ta: false, tb: false };
    const av = rand(8, 6);
    const bv = rand(8, 7);
    const ref = refMatMul(av, c, bv);
    const cpuOut = onBackend("cpu", () => {
      const out = tf.matMul(tf.tensor(av, c.a), tf.tensor(bv, c.b));
      return { shape: out.shape, v: take(out) };
    });
    const bad =
      cpuOut.v.length !== ref.out.length || cpuOut.v.some((x, i) => Math.abs(x - ref.out[i]!) > 1e-4);
    expect(bad).toBe(true);
  });

  it("empty dimensions give empty or zero outputs", () => {
    onBackend(NATIVE, () => {
      const z1 = tf.matMul(tf.zeros([0, 3]), tf.zeros([3, 4]));
      expect(z1.shape).toEqual([0, 4]);
      const z2 = tf.matMul(tf.ones([2, 0]), tf.ones([0, 3]));
      expect(z2.shape).toEqual([2, 3]);
      expectClose(take(z2), new Float32Array(6));
      z1.dispose();
    });
  });

  it("propagates NaN and Inf through the product", () => {
    onBackend(NATIVE, () => {
      const a = tf.tensor2d([
        [Number.NaN, 1],
        [1, 1],
        [Number.POSITIVE_INFINITY, 0],
      ]);
      const b = tf.tensor2d([
        [1, 2],
        [3, 4],
      ]);
      const v = take(tf.matMul(a, b));
      expect(Number.isNaN(v[0]!) && Number.isNaN(v[1]!)).toBe(true);
      expect([v[2], v[3]]).toEqual([4, 6]);
      expect([v[4], v[5]]).toEqual([Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]);
      tf.dispose([a, b]);
    });
  });

  it("mismatched inner dimensions raise an error naming both shapes", () => {
    onBackend(NATIVE, () => {
      expect(() => tf.matMul(tf.ones([2, 3]), tf.ones([4, 5]))).toThrow(/inner dimensions|inner shapes/);
    });
  });

  it("int32 operands take the cpu path and stay exact", () => {
    onBackend(NATIVE, () => {
      const out = tf.matMul(tf.tensor2d([[1, 2]], [1, 2], "int32"), tf.tensor2d([[3], [4]], [2, 1], "int32"));
      expect(out.dtype).toBe("int32");
      expect(Array.from(out.dataSync())).toEqual([11]);
      out.dispose();
    });
  });

  it("the direct sgemm entry point checks buffer sizes", () => {
    const addon = nativeAddon()!;
    expect(() =>
      addon.sgemm(false, false, 4, 4, 4, new Float32Array(15), new Float32Array(16), new Float32Array(16)),
    ).toThrow(/A has 15 elements, needs 16/);
  });
});

const ACTS = ["linear", "relu", "relu6", "elu", "leakyrelu", "sigmoid", "prelu"] as const;

describe.skipIf(!nativeAvailable)(`_FusedMatMul (native)${skipNote}`, () => {
  it.each(ACTS)("bias + %s matches the cpu backend", (act) => {
    const av = rand(2 * 5 * 6, 11, 2);
    const bv = rand(6 * 7, 12, 2);
    const bias = rand(7, 13);
    const alpha = rand(7, 14);
    const run = () => {
      const out = tf.fused.matMul({
        a: tf.tensor(av, [2, 5, 6]),
        b: tf.tile(tf.expandDims(tf.tensor(bv, [6, 7]), 0), [2, 1, 1]),
        bias: tf.tensor(bias, [7]),
        activation: act,
        ...(act === "prelu" ? { preluActivationWeights: tf.tensor(alpha, [7]) } : {}),
        leakyreluAlpha: 0.1,
      });
      return take(out);
    };
    const want = onBackend("cpu", () => tf.tidy(run));
    const got = onBackend(NATIVE, () => expectNoLeakValue(() => tf.tidy(run)));
    expectClose(got, want, { rtol: 1e-5, atol: 1e-5 });
  });

  it("transposed operands with relu, and its gradient, match the cpu backend", () => {
    const av = rand(6 * 4, 21);
    const bv = rand(5 * 6, 22);
    const bias = rand(5, 23);
    const f = () =>
      tf.tidy(() => {
        const a = tf.tensor(av, [6, 4]);
        const b = tf.tensor(bv, [5, 6]);
        const c = tf.tensor(bias, [5]);
        const g = tf.grads((x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
          tf.sum(
            tf.fused.matMul({
              a: x as tf.Tensor2D,
              b: y as tf.Tensor2D,
              bias: z,
              transposeA: true,
              transposeB: true,
              activation: "relu",
            }),
          ),
        )([a, b, c]);
        return g.map((t) => take(t.clone()));
      });
    const want = onBackend("cpu", f);
    const got = onBackend(NATIVE, f);
    for (let i = 0; i < 3; i++) expectClose(got[i]!, want[i]!, { rtol: 1e-5, atol: 1e-5 });
  });
});

function expectNoLeakValue<T>(f: () => T): T {
  const before = tf.memory().numTensors;
  const v = f();
  expect(tf.memory().numTensors).toBe(before);
  return v;
}
