// logSoftmaxTopK (decoding's next-token step) on every backend, against a
// plain-loop reference and literal values.
import "@tensorflow/tfjs-backend-wasm";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";

import { KernelError, logSoftmaxTopK } from "../src/index.js";
import { expectClose, expectNoLeak, NATIVE, nativeAvailable, onBackend, rand } from "./helpers.js";

const backends = ["cpu", "wasm", ...(nativeAvailable ? [NATIVE] : [])];

beforeAll(async () => {
  await tf.setBackend("wasm");
  await tf.ready();
  await tf.setBackend(nativeAvailable ? NATIVE : "cpu");
});

/** Plain loops: log-softmax in float64, then the k best columns (ties: lower column first). */
function reference(x: Float32Array, R: number, V: number, k: number, exclude: number) {
  const values: number[] = [];
  const indices: number[] = [];
  for (let r = 0; r < R; r++) {
    const row = Array.from(x.subarray(r * V, (r + 1) * V));
    const m = Math.max(...row);
    const lse = Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    const cols = row.map((v, c) => ({ c, lp: v - m - lse })).filter(({ c }) => c !== exclude);
    cols.sort((a, b) => b.lp - a.lp || a.c - b.c);
    for (let j = 0; j < k; j++) {
      values.push(cols[j]?.lp ?? Number.NEGATIVE_INFINITY);
      indices.push(cols[j]?.c ?? -1);
    }
  }
  return { values, indices };
}

function run(x: Float32Array, R: number, V: number, k: number, exclude?: number) {
  const logits = tf.tensor2d(x, [R, V]);
  const out = logSoftmaxTopK(logits, k, exclude === undefined ? {} : { exclude });
  const values = Array.from(out.values.dataSync());
  const indices = Array.from(out.indices.dataSync());
  expect(out.values.shape).toEqual([R, k]);
  expect(out.indices.dtype).toBe("int32");
  tf.dispose([logits, out.values, out.indices]);
  return { values, indices };
}

describe.each(backends)("logSoftmaxTopK on the %s backend", (backend) => {
  it("literal case: log-probabilities of the best columns, best first", () =>
    onBackend(backend, () =>
      expectNoLeak(() => {
        // Row 0: logits [0, ln 2, ln 3, ln 2] -> p = [1, 2, 3, 2] / 8; ties (cols 1 and 3) keep col 1 first.
        // Row 1: all equal -> p = 1/4 each; the lowest columns win.
        const x = Float32Array.of(0, Math.log(2), Math.log(3), Math.log(2), 5, 5, 5, 5);
        const { values, indices } = run(x, 2, 4, 3);
        expect(indices).toEqual([2, 1, 3, 0, 1, 2]);
        expectClose(values, [3 / 8, 2 / 8, 2 / 8, 1 / 4, 1 / 4, 1 / 4].map(Math.log), { rtol: 1e-6 });
      }),
    ));

  it("equals a plain-loop reference on random logits, with and without an excluded column", () =>
    onBackend(backend, () =>
      expectNoLeak(() => {
        const [R, V] = [7, 301];
        const x = rand(R * V, 5, 8);
        for (const [k, exclude] of [
          [1, -1],
          [4, -1],
          [4, 17],
          [6, 0],
        ] as const) {
          const ref = reference(x, R, V, k, exclude);
          const got = run(x, R, V, k, exclude);
          expect(got.indices).toEqual(ref.indices);
          expectClose(got.values, ref.values, { rtol: 1e-5, atol: 1e-5 });
        }
      }),
    ));

  it("the excluded column counts in the normaliser; k = V with it barred ends with -Infinity at -1", () =>
    onBackend(backend, () =>
      expectNoLeak(() => {
        // logits [ln 6, 0, ln 3]: p = [6, 1, 3] / 10. Barring column 0 leaves log(3/10), log(1/10).
        const x = Float32Array.of(Math.log(6), 0, Math.log(3));
        const { values, indices } = run(x, 1, 3, 3, 0);
        expect(indices).toEqual([2, 1, -1]);
        expectClose(values, [Math.log(0.3), Math.log(0.1), Number.NEGATIVE_INFINITY], { rtol: 1e-6 });
      }),
    ));

  it("bad arguments are clear errors", () =>
    onBackend(backend, () =>
      expectNoLeak(() => {
        const x = tf.zeros([2, 5]) as tf.Tensor2D;
        const v = tf.zeros([5]) as unknown as tf.Tensor2D;
        const i = tf.zeros([2, 5], "int32") as tf.Tensor2D;
        expect(() => logSoftmaxTopK(x, 0)).toThrow(KernelError);
        expect(() => logSoftmaxTopK(x, 6)).toThrow(/k must be an integer in \[1, 5\], got 6/);
        expect(() => logSoftmaxTopK(x, 2, { exclude: 5 })).toThrow(/exclude must be -1 or a column/);
        expect(() => logSoftmaxTopK(v, 2)).toThrow(/must be \[rows, V\]/);
        expect(() => logSoftmaxTopK(i, 2)).toThrow(/float32/);
        tf.dispose([x, v, i]);
      }),
    ));
});
