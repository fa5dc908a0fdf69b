import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

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
} from "./helpers.js";

type Red = "sum" | "mean" | "max" | "min" | "prod";

/** Plain-loop reduction reference. */
function refReduce(op: Red, x: Float32Array, shape: number[], axes: number[]): Float64Array {
  const keep = shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const outShape = keep.map((i) => shape[i]!);
  const out = new Float64Array(size(outShape));
  const init = { sum: 0, mean: 0, prod: 1, max: Number.NEGATIVE_INFINITY, min: Number.POSITIVE_INFINITY }[op];
  out.fill(init);
  const st = strides(outShape);
  const counts = size(axes.map((a) => shape[a]!));
  for (let i = 0; i < x.length; i++) {
    let rem = i;
    const idx = new Array<number>(shape.length);
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = rem % shape[d]!;
      rem = Math.floor(rem / shape[d]!);
    }
    let o = 0;
    keep.forEach((d, j) => {
      o += idx[d]! * st[j]!;
    });
    const v = x[i]!;
    const cur = out[o]!;
    if (op === "sum" || op === "mean") out[o] = cur + v;
    else if (op === "prod") out[o] = cur * v;
    else if (Number.isNaN(v) || Number.isNaN(cur)) out[o] = Number.NaN;
    else out[o] = op === "max" ? Math.max(cur, v) : Math.min(cur, v);
  }
  if (op === "mean") for (let i = 0; i < out.length; i++) out[i] = out[i]! / counts;
  return out;
}

const CASES: [number[], number[]][] = [
  [[5], [0]],
  [[4, 6], [1]],
  [[4, 6], [0]],
  [
    [4, 6],
    [0, 1],
  ],
  [[3, 4, 5], [1]],
  [
    [3, 4, 5],
    [0, 1],
  ],
  [
    [3, 4, 5],
    [1, 2],
  ],
  [
    [3, 4, 5],
    [0, 2],
  ], // alternating: transposed first
  [
    [2, 3, 4, 5],
    [0, 2],
  ],
  [
    [2, 3, 4, 5],
    [1, 3],
  ],
  [
    [2, 1, 4, 1],
    [1, 3],
  ], // size-1 dims only
  [[4096, 256], [0]], // bias-gradient shape, threaded
  [[256, 4096], [1]],
  [
    [8, 512, 64],
    [0, 1],
  ],
];

const OPS: [Red, (x: tf.Tensor, axes: number[], keep: boolean) => tf.Tensor][] = [
  ["sum", (x, a, k) => tf.sum(x, a, k)],
  ["mean", (x, a, k) => tf.mean(x, a, k)],
  ["max", (x, a, k) => tf.max(x, a, k)],
  ["min", (x, a, k) => tf.min(x, a, k)],
  ["prod", (x, a, k) => tf.prod(x, a, k)],
];

describe.skipIf(!nativeAvailable)(`reductions (native vs plain loops)${skipNote}`, () => {
  for (const [op, f] of OPS) {
    it.each(CASES.map(([s, a]) => [`${op} [${s}] over [${a}]`, s, a] as const))("%s", (_, shape, axes) => {
      const x = rand(size(shape), 71, op === "prod" ? 1.2 : 5);
      const want = refReduce(op, x, shape, axes);
      onBackend(NATIVE, () =>
        expectNoLeak(() => {
          const t = tf.tensor(x, shape);
          const out = f(t, axes, false);
          expect(out.shape).toEqual(shape.filter((_, i) => !axes.includes(i)));
          expectClose(take(out), want, { rtol: op === "prod" ? 1e-5 : 2e-6, atol: 1e-5 });
          const kept = f(t, axes, true);
          expect(kept.shape).toEqual(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
          kept.dispose();
          t.dispose();
        }),
      );
    });
  }

  it("max and min propagate NaN; sums of Inf stay Inf", () => {
    onBackend(NATIVE, () => {
      const x = tf.tensor2d([
        [1, Number.NaN, 3],
        [1, 2, Number.POSITIVE_INFINITY],
      ]);
      expect(Array.from(take(tf.max(x, 1)))).toEqual([Number.NaN, Number.POSITIVE_INFINITY]);
      expect(Array.from(take(tf.min(x, 1)))).toEqual([Number.NaN, 1]);
      const s = take(tf.sum(x, 0));
      expect(Number.isNaN(s[1]!)).toBe(true);
      expect(s[2]).toBe(Number.POSITIVE_INFINITY);
      x.dispose();
    });
  });

  it("reducing an empty axis gives the identity (sum 0, mean NaN, max -Inf)", () => {
    onBackend(NATIVE, () => {
      const x = tf.zeros([3, 0]);
      expect(Array.from(take(tf.sum(x, 1)))).toEqual([0, 0, 0]);
      expect(take(tf.mean(x, 1)).every(Number.isNaN)).toBe(true);
      expect(Array.from(take(tf.max(x, 1)))).toEqual([-Infinity, -Infinity, -Infinity]);
      x.dispose();
    });
  });

  it("sums accumulate in double precision", () => {
    onBackend(NATIVE, () => {
      const x = tf.fill([1 << 20], 0.1);
      const got = take(tf.sum(x))[0]!;
      expect(Math.abs(got - 0.1 * (1 << 20))).toBeLessThan(0.01);
      x.dispose();
    });
  });

  it("gradients of sum, mean and max match the cpu backend", () => {
    const xv = rand(3 * 4 * 5, 81);
    const f = () =>
      tf.tidy(() =>
        take(
          tf.grad((x: tf.Tensor) =>
            tf.add(
              tf.sum(tf.mul(tf.sum(x, [0, 2]), tf.range(1, 5))),
              tf.add(tf.sum(tf.mean(x, 1)), tf.sum(tf.max(x, 2))),
            ),
          )(tf.tensor(xv, [3, 4, 5])),
        ),
      );
    expectClose(onBackend(NATIVE, f), onBackend("cpu", f), { rtol: 1e-5, atol: 1e-6 });
  });
});
