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
  take,
} from "./helpers.js";

const SPECIAL = [
  Number.NEGATIVE_INFINITY,
  -1e30,
  -104,
  -88.5,
  -20,
  -3,
  -1,
  -0.5,
  -1e-40,
  -0,
  0,
  1e-40,
  0.5,
  1,
  3,
  20,
  88.5,
  88.8,
  1e30,
  Number.POSITIVE_INFINITY,
  Number.NaN,
];

const BINARY: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
  ["add", tf.add],
  ["sub", tf.sub],
  ["mul", tf.mul],
  ["div", tf.div],
  ["maximum", tf.maximum],
  ["minimum", tf.minimum],
  ["squaredDifference", tf.squaredDifference],
  ["prelu", (a, b) => tf.prelu(a, b)],
];

const BROADCASTS: [number[], number[]][] = [
  [[], []],
  [[7], []],
  [[], [7]],
  [
    [3, 4],
    [3, 4],
  ],
  [[3, 4], [4]],
  [
    [3, 4],
    [3, 1],
  ],
  [
    [3, 1],
    [1, 4],
  ],
  [
    [2, 3, 4],
    [3, 1],
  ],
  [
    [2, 1, 4, 5],
    [3, 1, 5],
  ],
  [
    [2, 3, 1, 5],
    [2, 1, 4, 1],
  ],
  [[0, 3], [3]],
  [[1000, 37], [37]],
  [
    [64, 512],
    [64, 512],
  ], // large enough to run threaded
];

describe.skipIf(!nativeAvailable)(`binary elementwise kernels (native vs cpu)${skipNote}`, () => {
  for (const [name, op] of BINARY) {
    it.each(BROADCASTS.map(([a, b]) => [`[${a}] ${name} [${b}]`, a, b] as const))("%s", (_, sa, sb) => {
      const av = rand(size(sa), 31, 3);
      const bv = rand(size(sb), 32, 3);
      const run = () => tf.tidy(() => take(op(tf.tensor(av, sa), tf.tensor(bv, sb))));
      const want = onBackend("cpu", run);
      const got = onBackend(NATIVE, () => {
        let v: Float32Array = new Float32Array();
        expectNoLeak(() => {
          v = run();
        });
        return v;
      });
      expectClose(got, want, { rtol: 1e-6, atol: 0 });
    });
  }

  it.each(BINARY.map(([n, op]) => [n, op] as const))(
    "%s propagates NaN/Inf like the cpu backend",
    (_, op) => {
      const vals = SPECIAL;
      const a = new Float32Array(vals.length * vals.length);
      const b = new Float32Array(vals.length * vals.length);
      vals.forEach((x, i) => {
        vals.forEach((y, j) => {
          a[i * vals.length + j] = x;
          b[i * vals.length + j] = y;
        });
      });
      const run = () => tf.tidy(() => take(op(tf.tensor(a), tf.tensor(b))));
      expectClose(onBackend(NATIVE, run), onBackend("cpu", run), { rtol: 1e-6, atol: 0 });
    },
  );

  it("int32 arithmetic takes the cpu path and stays int32", () => {
    onBackend(NATIVE, () => {
      const out = tf.add(tf.tensor1d([1, 2], "int32"), tf.tensor1d([3, 2147483000], "int32"));
      expect(out.dtype).toBe("int32");
      expect(Array.from(out.dataSync())).toEqual([4, 2147483002]);
      out.dispose();
    });
  });

  it("incompatible shapes raise tfjs's broadcast error", () => {
    onBackend(NATIVE, () => {
      expect(() => tf.add(tf.ones([2, 3]), tf.ones([4]))).toThrow(/broadcast/i);
    });
  });

  it("gradients of broadcasting add/mul/div match the cpu backend", () => {
    const av = rand(2 * 3 * 4, 41);
    const bv = rand(3 * 1, 42).map((x) => x + 2);
    const f = () =>
      tf.tidy(() => {
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.div(tf.mul(tf.add(a, b), a), b)))([
          tf.tensor(av, [2, 3, 4]),
          tf.tensor(bv, [3, 1]),
        ]);
        return g.map((t) => take(t.clone()));
      });
    const want = onBackend("cpu", f);
    const got = onBackend(NATIVE, f);
    expectClose(got[0]!, want[0]!, { rtol: 1e-5, atol: 1e-6 });
    expectClose(got[1]!, want[1]!, { rtol: 1e-5, atol: 1e-6 });
  });
});

const UNARY: [string, (x: tf.Tensor) => tf.Tensor, number][] = [
  ["relu", tf.relu, 0],
  ["relu6", tf.relu6, 0],
  ["elu", tf.elu, 2e-6],
  ["leakyRelu", (x) => tf.leakyRelu(x, 0.3), 2e-7], // alpha * x in float32, not double
  ["sigmoid", tf.sigmoid, 2e-6],
  ["tanh", tf.tanh, 2e-6],
  ["exp", tf.exp, 2e-6],
  ["log", tf.log, 2e-6],
  ["sqrt", tf.sqrt, 2e-6],
  ["rsqrt", tf.rsqrt, 2e-6],
  ["neg", tf.neg, 0],
  ["square", tf.square, 2e-6],
  ["abs", tf.abs, 0],
  ["reciprocal", tf.reciprocal, 2e-6],
  ["step", (x) => tf.step(x, 0.25), 0],
  ["erf", tf.erf, 2e-6], // both sides: Abramowitz-Stegun 7.1.26, |error| < 1.5e-7
];

describe.skipIf(!nativeAvailable)(`unary elementwise kernels (native vs cpu)${skipNote}`, () => {
  it.each(UNARY.map(([n, op, tol]) => [n, op, tol] as const))(
    "%s on special values and a random sweep",
    (_, op, tol) => {
      const sweep = rand(50_000, 51, 30);
      const x = new Float32Array([...SPECIAL, ...sweep]);
      const run = () => tf.tidy(() => take(op(tf.tensor(x))));
      const want = onBackend("cpu", run);
      const got = onBackend(NATIVE, run);
      // Denormal results may flush differently: compare with an absolute floor;
      // erf is only absolutely accurate (1.5e-7) in its reference formula.
      expectClose(got, want, { rtol: tol, atol: _ === "erf" ? 2e-7 : 1e-37 });
    },
  );

  it("exp is accurate to ~1 ulp against Math.exp over the float range", () => {
    const x = new Float32Array(20001).map((_, i) => -103 + (i / 20000) * 191.7);
    const got = onBackend(NATIVE, () => take(tf.exp(tf.tensor(x))));
    let worst = 0;
    x.forEach((v, i) => {
      const e = Math.fround(Math.exp(v));
      if (e > 1e-37 && Number.isFinite(e)) worst = Math.max(worst, Math.abs(got[i]! - e) / e);
    });
    expect(worst).toBeLessThan(3e-7);
  });

  it("gradients of relu, sigmoid, tanh, exp, sqrt match the cpu backend", () => {
    const xv = rand(1000, 61, 4).map((v) => (Math.abs(v) < 1e-3 ? 0.5 : v));
    const f = () =>
      tf.tidy(() =>
        take(
          tf.grad((x: tf.Tensor) =>
            tf.sum(
              tf.add(
                tf.add(tf.relu(x), tf.sigmoid(x)),
                tf.add(tf.tanh(x), tf.add(tf.exp(x), tf.sqrt(tf.abs(x)))),
              ),
            ),
          )(tf.tensor(xv)),
        ),
      );
    expectClose(onBackend(NATIVE, f), onBackend("cpu", f), { rtol: 1e-5, atol: 1e-6 });
  });
});
