import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { logSoftmax } from "../src/index.js";
import {
  expectClose,
  expectNoLeak,
  NATIVE,
  nativeAvailable,
  onBackend,
  rand,
  size,
  skipNote,
  strides,
  take,
  unravel,
} from "./helpers.js";

/** Plain-loop (log-)softmax over the last axis in float64. */
function refSoftmax(x: Float32Array, cols: number, log: boolean): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    let m = Number.NEGATIVE_INFINITY;
    let nan = false;
    for (let c = 0; c < cols; c++) {
      const v = x[r * cols + c]!;
      if (Number.isNaN(v)) nan = true;
      m = Math.max(m, v);
    }
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - m);
    for (let c = 0; c < cols; c++) {
      const v = x[r * cols + c]!;
      out[r * cols + c] = nan ? Number.NaN : log ? v - m - Math.log(s) : Math.exp(v - m) / s;
    }
  }
  return out;
}

describe.skipIf(!nativeAvailable)(`Softmax and LogSoftmax (native)${skipNote}`, () => {
  const shapes = [[5], [3, 7], [2, 3, 11], [512, 512], [1, 1]];
  for (const log of [false, true]) {
    it.each(shapes.map((s) => [`[${s}]`, s] as const))(
      `${log ? "logSoftmax" : "softmax"} %s matches plain loops`,
      (_, shape) => {
        const x = rand(size(shape), 91, 20);
        const cols = shape[shape.length - 1]!;
        onBackend(NATIVE, () =>
          expectNoLeak(() => {
            const t = tf.tensor(x, shape);
            expectClose(take(log ? logSoftmax(t) : tf.softmax(t)), refSoftmax(x, cols, log), {
              rtol: 2e-6,
              atol: 1e-7,
            });
            t.dispose();
          }),
        );
      },
    );
  }

  it("is stable for huge logits and handles -Inf and NaN rows", () => {
    const x = new Float32Array([1000, 1001, 999, 5, Number.NEGATIVE_INFINITY, 6, 1, Number.NaN, 2]);
    onBackend(NATIVE, () => {
      const sm = take(tf.softmax(tf.tensor(x, [3, 3])));
      expectClose(sm, refSoftmax(x, 3, false), { rtol: 1e-6, atol: 1e-7 });
      expect(sm[4]).toBe(0);
      const ls = take(logSoftmax(tf.tensor(x, [3, 3])));
      expectClose(ls, refSoftmax(x, 3, true), { rtol: 1e-6, atol: 1e-6 });
      expect(ls[4]).toBe(Number.NEGATIVE_INFINITY);
    });
  });

  it("gradients match the composite path on the cpu backend", () => {
    const xv = rand(4 * 9, 93, 3);
    const w = rand(4 * 9, 94);
    const f = (useLog: boolean) => () =>
      tf.tidy(() =>
        take(
          tf.grad((x: tf.Tensor) =>
            tf.sum(tf.mul(useLog ? logSoftmax(x) : tf.softmax(x), tf.tensor(w, [4, 9]))),
          )(tf.tensor(xv, [4, 9])),
        ),
      );
    for (const useLog of [false, true]) {
      expectClose(onBackend(NATIVE, f(useLog)), onBackend("cpu", f(useLog)), { rtol: 1e-5, atol: 1e-6 });
    }
  });

  it("logSoftmax refuses a non-last axis and non-float input with the argument named", () => {
    onBackend(NATIVE, () => {
      expect(() => logSoftmax(tf.ones([2, 3]), 0)).toThrow(/only the last axis/);
      expect(() => logSoftmax(tf.ones([2, 3], "int32"))).toThrow(/logits must be float32, got int32/);
    });
  });
});

/** Plain-loop transpose reference. */
function refTranspose(x: Float32Array, shape: number[], perm: number[]): Float32Array {
  const outShape = perm.map((p) => shape[p]!);
  const inStr = strides(shape);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const oi = unravel(i, outShape);
    let src = 0;
    perm.forEach((p, d) => {
      src += oi[d]! * inStr[p]!;
    });
    out[i] = x[src]!;
  }
  return out;
}

const PERMS: [number[], number[]][] = [
  [[7], [0]],
  [
    [3, 5],
    [1, 0],
  ],
  [
    [3, 5],
    [0, 1],
  ],
  [
    [67, 45],
    [1, 0],
  ],
  [
    [2, 3, 4],
    [0, 2, 1],
  ],
  [
    [2, 3, 4],
    [2, 0, 1],
  ],
  [
    [2, 3, 4],
    [1, 0, 2],
  ],
  [
    [4, 16, 8, 32],
    [0, 2, 1, 3],
  ], // attention head split
  [
    [4, 8, 16, 32],
    [0, 2, 1, 3],
  ],
  [
    [2, 3, 1, 4, 5],
    [4, 2, 0, 3, 1],
  ],
  [
    [1, 1, 6],
    [2, 0, 1],
  ],
  [
    [0, 3],
    [1, 0],
  ],
  [
    [128, 512],
    [1, 0],
  ], // threaded
];

describe.skipIf(!nativeAvailable)(`Transpose (native vs plain loops)${skipNote}`, () => {
  it.each(PERMS.map(([s, p]) => [`[${s}] by [${p}]`, s, p] as const))("%s", (_, shape, perm) => {
    const x = rand(size(shape), 101);
    onBackend(NATIVE, () =>
      expectNoLeak(() => {
        const t = tf.tensor(x, shape);
        const out = tf.transpose(t, perm);
        expect(out.shape).toEqual(perm.map((p) => shape[p]!));
        expect(Array.from(take(out))).toEqual(Array.from(refTranspose(x, shape, perm)));
        t.dispose();
      }),
    );
  });

  it("keeps NaN payloads and infinities bit-exact", () => {
    const x = new Float32Array([Number.NaN, Number.POSITIVE_INFINITY, -0, Number.NEGATIVE_INFINITY, 1, 2]);
    onBackend(NATIVE, () => {
      const v = take(tf.transpose(tf.tensor(x, [2, 3])));
      expect(Object.is(v[4], -0)).toBe(true);
      expect(Number.isNaN(v[0]!)).toBe(true);
      expect(v[1]).toBe(Number.NEGATIVE_INFINITY);
      expect(v[2]).toBe(Number.POSITIVE_INFINITY);
    });
  });

  it("gradient is the inverse permutation (matches the cpu backend)", () => {
    const xv = rand(2 * 3 * 4, 102);
    const w = rand(24, 103);
    const f = () =>
      tf.tidy(() =>
        take(
          tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.transpose(x, [2, 0, 1]), tf.tensor(w, [4, 2, 3]))))(
            tf.tensor(xv, [2, 3, 4]),
          ),
        ),
      );
    expectClose(onBackend(NATIVE, f), onBackend("cpu", f), { rtol: 0, atol: 0 });
  });
});
