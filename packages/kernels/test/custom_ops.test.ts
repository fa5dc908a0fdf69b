// PolyMoE's custom ops (gelu, layerNorm, logSoftmax) on every backend this
// machine has: the native kernels where registered, the tfjs-ops composite
// elsewhere. Same oracles, same tolerances, forward and gradient.
import "@tensorflow/tfjs-backend-wasm";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";

import { backendHasKernel, Gelu, gelu, LayerNorm, layerNorm, logSoftmax } from "../src/index.js";
import { expectClose, expectNoLeak, NATIVE, nativeAvailable, onBackend, rand, take } from "./helpers.js";

/** erfc(z) in float64 for z >= 0: Maclaurin series below 2, continued fraction above. */
function erfc64(z: number): number {
  if (z < 2) {
    let term = z;
    let sum = z;
    for (let n = 1; n < 60; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(z) = exp(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))), evaluated backwards.
  let k = z;
  for (let n = 80; n >= 1; n--) k = z + n / 2 / k;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / k;
}
/** Standard normal CDF in float64, accurate in both tails. */
const phi64 = (x: number) => (x < 0 ? 0.5 * erfc64(-x / Math.SQRT2) : 1 - 0.5 * erfc64(x / Math.SQRT2));
const gelu64 = (x: number) => x * phi64(x);
const geluGrad64 = (x: number) => phi64(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);

/** LayerNorm in float64 and its gradients for loss = sum(w * y). */
function layerNorm64(
  x: Float32Array,
  g: Float32Array,
  b: Float32Array,
  w: Float32Array,
  D: number,
  eps: number,
) {
  const rows = x.length / D;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const dg = new Float64Array(D);
  const db = new Float64Array(D);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let c = 0; c < D; c++) mu += x[r * D + c]!;
    mu /= D;
    let v = 0;
    for (let c = 0; c < D; c++) v += (x[r * D + c]! - mu) ** 2;
    v /= D;
    const rs = 1 / Math.sqrt(v + eps);
    const xh = new Float64Array(D);
    let m1 = 0;
    let m2 = 0;
    for (let c = 0; c < D; c++) {
      xh[c] = (x[r * D + c]! - mu) * rs;
      y[r * D + c] = xh[c]! * g[c]! + b[c]!;
      const gr = w[r * D + c]! * g[c]!;
      m1 += gr;
      m2 += gr * xh[c]!;
      dg[c]! += w[r * D + c]! * xh[c]!;
      db[c]! += w[r * D + c]!;
    }
    m1 /= D;
    m2 /= D;
    for (let c = 0; c < D; c++) dx[r * D + c] = rs * (w[r * D + c]! * g[c]! - m1 - xh[c]! * m2);
  }
  return { y, dx, dg, db };
}

const backends = ["cpu", "wasm", ...(nativeAvailable ? [NATIVE] : [])];

beforeAll(async () => {
  await tf.setBackend("wasm");
  await tf.ready();
  await tf.setBackend(nativeAvailable ? NATIVE : "cpu");
});

describe.each(backends)("custom ops on the %s backend", (backend) => {
  // The native kernels compute GELU through erfc (relative accuracy in both
  // tails). The composites compute 1 + erf(x) in float32 from tfjs's erf
  // (Abramowitz-Stegun, |error| < 1.5e-7), accurate only in absolute terms;
  // wasm's moments are plain float32 sums.
  const tol =
    backend === NATIVE
      ? { rtol: 2e-5, atol: 1e-7 }
      : backend === "wasm"
        ? { rtol: 1e-4, atol: 5e-6 }
        : { rtol: 2e-5, atol: 3e-6 };
  // LayerNorm's y = xhat * gamma + beta cancels: absolute float32 error ~ ulp(|terms|).
  const lnTol = { rtol: tol.rtol, atol: Math.max(tol.atol, 1e-6) };

  it("uses the native kernels exactly when the backend provides them", () => {
    onBackend(backend, () => {
      expect(backendHasKernel(Gelu)).toBe(backend === NATIVE);
      expect(backendHasKernel(LayerNorm)).toBe(backend === NATIVE);
    });
  });

  it("gelu: literal values", () => {
    onBackend(backend, () => {
      const v = take(gelu(tf.tensor1d([-3, -1, 0, 0.5, 2])));
      // 0.5 x (1 + erf(x / sqrt 2)) worked out: -0.0040497, -0.1586553, 0, 0.3457312, 1.9544997
      expectClose(v, [-0.00404969, -0.15865525, 0, 0.34573123, 1.95449974], { rtol: 2e-6, atol: 2e-7 });
    });
  });

  it("gelu: forward and gradient against float64 oracles", () => {
    const x = rand(4096, 201, 6);
    onBackend(backend, () =>
      expectNoLeak(() => {
        const t = tf.tensor(x);
        expectClose(take(gelu(t)), Array.from(x, gelu64), tol);
        const g = tf.grad((a: tf.Tensor) => tf.sum(gelu(a)))(t);
        expectClose(take(g), Array.from(x, geluGrad64), tol);
        t.dispose();
      }),
    );
  });

  it("gelu: NaN propagates, infinities saturate", () => {
    onBackend(backend, () => {
      const v = take(gelu(tf.tensor1d([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])));
      expect(Number.isNaN(v[0]!)).toBe(true);
      expect(v[1]).toBe(Number.POSITIVE_INFINITY);
    });
  });

  it.each([
    [1, 4],
    [6, 33],
    [128, 256],
  ])("layerNorm [%i, %i]: forward and all three gradients against float64 loops", (rows, D) => {
    const x = rand(rows * D, 211, 3).map((v, i) => v + (i % D) * 0.01 + 5); // offset mean
    const g = rand(D, 212).map((v) => v + 1);
    const b = rand(D, 213);
    const w = rand(rows * D, 214);
    const ref = layerNorm64(x, g, b, w, D, 1e-5);
    onBackend(backend, () =>
      expectNoLeak(() => {
        const [xt, gt, bt, wt] = [
          tf.tensor(x, [rows, D]),
          tf.tensor(g),
          tf.tensor(b),
          tf.tensor(w, [rows, D]),
        ];
        expectClose(take(layerNorm(xt, gt, bt)), ref.y, lnTol);
        const [dx, dg, db] = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
          tf.sum(tf.mul(layerNorm(a, c, d), wt)),
        )([xt, gt, bt]);
        expectClose(take(dx!), ref.dx, { rtol: 1e-3, atol: 2e-5 });
        expectClose(take(dg!), ref.dg, { rtol: 1e-4, atol: 2e-5 });
        expectClose(take(db!), ref.db, { rtol: 1e-5, atol: 1e-5 });
        tf.dispose([xt, gt, bt, wt]);
      }),
    );
  });

  it("layerNorm: literal values", () => {
    onBackend(backend, () => {
      const y = take(
        layerNorm(tf.tensor2d([[1, 2, 3, 4]]), tf.tensor1d([1, 1, 2, 2]), tf.tensor1d([0, 0, 0, 1]), 1e-5),
      );
      // mean 2.5, var 1.25: (x - 2.5) / sqrt(1.25 + 1e-5) = [-1.341635, -0.447212, 0.447212, 1.341635]
      expectClose(y, [-1.3416354, -0.4472118, 0.8944236, 3.6832708], { rtol: 1e-5, atol: 1e-6 });
    });
  });

  it("layerNorm: bad shapes and dtypes name the argument and both shapes", () => {
    onBackend(backend, () => {
      expect(() => layerNorm(tf.ones([2, 4]), tf.ones([3]), tf.ones([4]))).toThrow(
        /gamma must have shape \[4\] \(the last dim of x \[2,4\]\), got \[3\]/,
      );
      expect(() => layerNorm(tf.ones([2, 4], "int32"), tf.ones([4]), tf.ones([4]))).toThrow(
        /x must be float32/,
      );
      expect(() => layerNorm(tf.ones([2, 4]), tf.ones([4]), tf.ones([4]), 0)).toThrow(/epsilon must be > 0/);
    });
  });

  it("logSoftmax: forward and gradient equal the tfjs composite on the cpu backend", () => {
    const x = rand(8 * 50, 221, 10);
    const w = rand(8 * 50, 222);
    const run = () =>
      tf.tidy(() => {
        const t = tf.tensor(x, [8, 50]);
        const y = take(logSoftmax(t));
        const g = take(tf.grad((a: tf.Tensor) => tf.sum(tf.mul(logSoftmax(a), tf.tensor(w, [8, 50]))))(t));
        return [y, g];
      });
    const want = onBackend("cpu", run);
    const got = onBackend(backend, run);
    expectClose(got[0]!, want[0]!, tol);
    expectClose(got[1]!, want[1]!, tol);
  });
});
