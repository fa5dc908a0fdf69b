// Grouped expert matmul on every backend (native kernel where registered, the
// gather + batched-matMul composite elsewhere) against plain loops: forward,
// every gradient, uncovered rows, bias, transposed weights, bad segments.
import "@tensorflow/tfjs-backend-wasm";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";

import { groupedMatMul } from "../src/index.js";
import { expectClose, expectNoLeak, NATIVE, nativeAvailable, onBackend, rand, take } from "./helpers.js";

const backends = ["cpu", "wasm", ...(nativeAvailable ? [NATIVE] : [])];

beforeAll(async () => {
  await tf.setBackend("wasm");
  await tf.ready();
  await tf.setBackend(nativeAvailable ? NATIVE : "cpu");
});

/** Plain-loop forward, and the gradients of sum(g * y). w is [E, K, N] (or [E, N, K] when transposed). */
function reference(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  g: Float32Array,
  seg: Int32Array,
  R: number,
  E: number,
  K: number,
  N: number,
  transW: boolean,
) {
  const W = (e: number, k: number, n: number) =>
    transW ? w[e * N * K + n * K + k]! : w[e * K * N + k * N + n]!;
  const y = new Float64Array(R * N);
  const dx = new Float64Array(R * K);
  const dw = new Float64Array(E * K * N);
  const db = new Float64Array(E * N);
  for (let s = 0; s < seg.length / 3; s++) {
    const [start, rows, e] = [seg[3 * s]!, seg[3 * s + 1]!, seg[3 * s + 2]!];
    for (let r = start; r < start + rows; r++) {
      for (let n = 0; n < N; n++) {
        let acc = b ? b[e * N + n]! : 0;
        for (let k = 0; k < K; k++) acc += x[r * K + k]! * W(e, k, n);
        y[r * N + n] = acc;
        db[e * N + n]! += g[r * N + n]!;
        for (let k = 0; k < K; k++) {
          dx[r * K + k]! += g[r * N + n]! * W(e, k, n);
          const wi = transW ? e * N * K + n * K + k : e * K * N + k * N + n;
          dw[wi]! += x[r * K + k]! * g[r * N + n]!;
        }
      }
    }
  }
  return { y, dx, dw, db };
}

describe.each(backends)("groupedMatMul on the %s backend", (backend) => {
  it("literal example: two experts, one segment each, an uncovered row, bias", () => {
    onBackend(backend, () =>
      expectNoLeak(() => {
        // rows 0-1 -> expert 1, row 2 uncovered, row 3 -> expert 0
        const x = tf.tensor2d([
          [1, 2],
          [3, 4],
          [5, 6],
          [7, 8],
        ]);
        const w = tf.tensor3d([
          [
            [1, 0],
            [0, 1],
          ], // expert 0: identity
          [
            [2, 0],
            [0, 3],
          ], // expert 1: diag(2, 3)
        ]);
        const bias = tf.tensor2d([
          [10, 20],
          [100, 200],
        ]);
        const y = groupedMatMul(x, w, Int32Array.from([0, 2, 1, 3, 1, 0]), { bias });
        expect(Array.from(y.dataSync())).toEqual([102, 206, 106, 212, 0, 0, 17, 28]);
        tf.dispose([x, w, bias, y]);
      }),
    );
  });

  it.each([
    ["padded blocks (capacity layout)", false, "blocks"],
    ["unpadded back-to-back segments (dropless layout)", false, "packed"],
    ["several segments per expert (expert-parallel layout), transposed weights", true, "multi"],
  ] as const)("forward and all gradients match plain loops: %s", (_, transW, layout) => {
    const [E, K, N] = [4, 6, 5];
    const R = 24;
    const seg =
      layout === "blocks"
        ? Int32Array.from([0, 4, 0, 6, 0, 1, 12, 6, 2, 18, 2, 3]) // capacity 6; expert 1 empty
        : layout === "packed"
          ? Int32Array.from([0, 7, 2, 7, 9, 3, 7, 0, 1, 16, 8, 0]) // empty expert 1 between; rows 16..23 expert 0
          : Int32Array.from([0, 3, 1, 6, 2, 1, 12, 4, 3, 18, 5, 1, 8, 2, 3]);
    const x = rand(R * K, 401);
    const w = rand(E * K * N, 402);
    const b = transW ? null : rand(E * N, 403);
    const g = rand(R * N, 404);
    const ref = reference(x, w, b, g, seg, R, E, K, N, transW);
    onBackend(backend, () =>
      expectNoLeak(() => {
        const xt = tf.tensor2d(x, [R, K]);
        const wt = tf.tensor3d(w, transW ? [E, N, K] : [E, K, N]);
        const bt = b ? tf.tensor2d(b, [E, N]) : null;
        const gt = tf.tensor2d(g, [R, N]);
        const f = (a: tf.Tensor, ww: tf.Tensor, bb?: tf.Tensor) =>
          groupedMatMul(a as tf.Tensor2D, ww as tf.Tensor3D, seg, {
            ...(bb ? { bias: bb as tf.Tensor2D } : {}),
            transposeW: transW,
          });
        expectClose(take(bt ? f(xt, wt, bt) : f(xt, wt)), ref.y, { rtol: 1e-5, atol: 1e-5 });
        const loss = (...args: tf.Tensor[]) => tf.sum(tf.mul(f(args[0]!, args[1]!, args[2]), gt));
        const grads = tf.grads(loss)(bt ? [xt, wt, bt] : [xt, wt]);
        expectClose(take(grads[0]!), ref.dx, { rtol: 1e-5, atol: 1e-5 });
        expectClose(take(grads[1]!), ref.dw, { rtol: 1e-5, atol: 1e-5 });
        if (bt) expectClose(take(grads[2]!), ref.db, { rtol: 1e-5, atol: 1e-5 });
        tf.dispose([xt, wt, gt, ...(bt ? [bt] : [])]);
      }),
    );
  });

  it("equals the dense batched matmul on a full capacity buffer (every row covered)", () => {
    const [E, C, K, N] = [3, 5, 4, 6];
    const seg = Int32Array.from({ length: E * 3 }, (_, i) =>
      i % 3 === 0 ? (i / 3) * C : i % 3 === 1 ? C : (i - 2) / 3,
    );
    const x = rand(E * C * K, 411);
    const w = rand(E * K * N, 412);
    onBackend(backend, () => {
      const [grouped, dense] = tf.tidy(() => {
        const xt = tf.tensor2d(x, [E * C, K]);
        const wt = tf.tensor3d(w, [E, K, N]);
        return [
          take(groupedMatMul(xt, wt, seg)),
          take(tf.matMul(tf.reshape(xt, [E, C, K]) as tf.Tensor3D, wt)),
        ];
      });
      expectClose(grouped, dense, { rtol: 1e-5, atol: 1e-6 });
    });
  });

  it("bad segments and shapes are refused with the argument named", () => {
    onBackend(backend, () => {
      const x = tf.zeros([4, 2]) as tf.Tensor2D;
      const w = tf.zeros([2, 2, 3]) as tf.Tensor3D;
      expect(() => groupedMatMul(x, w, Int32Array.from([0, 5, 0]))).toThrow(
        /segment 0 covers rows \[0, 5\), outside the buffer's 4 rows/,
      );
      expect(() => groupedMatMul(x, w, Int32Array.from([0, 2, 2]))).toThrow(
        /segment 0 names expert 2, not in \[0, 2\)/,
      );
      expect(() => groupedMatMul(x, w, Int32Array.from([0, 3, 0, 2, 2, 1]))).toThrow(
        /segment 1 overlaps an earlier one at row 2/,
      );
      expect(() => groupedMatMul(x, w, Int32Array.from([0, 3]))).toThrow(
        /\(start, rows, expert\) triples, got 2 values/,
      );
      expect(() => groupedMatMul(tf.zeros([4, 3]) as tf.Tensor2D, w, new Int32Array())).toThrow(
        /x \[4,3\] has 3 columns but w \[2,2,3\] takes 2/,
      );
      expect(() => groupedMatMul(x, w, new Int32Array(), { bias: tf.zeros([2, 2]) as tf.Tensor2D })).toThrow(
        /bias must be \[2, 3\], got \[2,2\]/,
      );
      tf.dispose([x, w]);
    });
  });
});
