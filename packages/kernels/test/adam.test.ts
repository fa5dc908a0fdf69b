import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { type AdamStepConfig, adamStep, copyFloat32, KernelError } from "../src/index.js";
import { nativeAvailable, onBackend, skipNote } from "./helpers.js";

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = (s / 4294967296 - 0.5) * 2 * scale;
  }
  return a;
}

/** Double-precision plain-loop reference of one Adam/AdamW step. */
function reference(
  p: Float64Array,
  g: Float32Array,
  m: Float64Array,
  v: Float64Array,
  c: AdamStepConfig,
): void {
  const s = c.gradScale ?? 1;
  const c1 = 1 - c.beta1 ** c.step;
  const c2 = 1 - c.beta2 ** c.step;
  for (let i = 0; i < p.length; i++) {
    let gi = (g[i] as number) * s;
    if (!c.decoupled) gi += c.weightDecay * (p[i] as number);
    m[i] = c.beta1 * (m[i] as number) + (1 - c.beta1) * gi;
    v[i] = c.beta2 * (v[i] as number) + (1 - c.beta2) * gi * gi;
    let u = (m[i] as number) / c1 / (Math.sqrt((v[i] as number) / c2) + c.eps);
    if (c.decoupled) u += c.weightDecay * (p[i] as number);
    p[i] = (p[i] as number) - c.lr * u;
  }
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
  return d;
};

const impls = [
  ["js", true],
  ["native", nativeAvailable],
] as const;

describe("adamStep: literal values", () => {
  const base = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 };
  for (const [impl, ok] of impls) {
    it.skipIf(!ok)(
      `${impl}: first step of Adam, AdamW and Adam+L2 on p=1, g=0.5${ok ? "" : skipNote}`,
      () => {
        const one = (weightDecay: number, decoupled: boolean) => {
          const a = {
            param: Float32Array.of(1, -2),
            grad: Float32Array.of(0.5, 0),
            m: new Float32Array(2),
            v: new Float32Array(2),
          };
          expect(adamStep(a, { ...base, weightDecay, decoupled }, { impl })).toBe(impl);
          return a;
        };
        // mhat = g, vhat = g^2: the first step moves every parameter with a gradient by lr.
        const plain = one(0, true);
        expect(plain.param[0]).toBeCloseTo(0.9, 5);
        expect(plain.param[1]).toBe(-2); // zero gradient, no decay: unchanged
        expect(plain.m[0]).toBeCloseTo(0.05, 6);
        expect(plain.v[0]).toBeCloseTo(0.00025, 8);
        // AdamW: p -= lr * (1 + wd * p) = 1 - 0.1 * 1.01
        const adamw = one(0.01, true);
        expect(adamw.param[0]).toBeCloseTo(0.899, 5);
        expect(adamw.param[1]).toBeCloseTo(-2 + 0.1 * 0.01 * 2, 6);
        // Adam + L2: g = 0.5 + 0.1 * 1 = 0.6; still a unit step, moments of 0.6.
        const l2 = one(0.1, false);
        expect(l2.param[0]).toBeCloseTo(0.9, 5);
        expect(l2.m[0]).toBeCloseTo(0.06, 6);
        // Parameter -2 with zero gradient: g = -0.2, so it moves up by lr.
        expect(l2.param[1]).toBeCloseTo(-1.9, 5);
      },
    );
  }
});

describe("adamStep against a double-precision plain loop (5 steps, random tensors)", () => {
  for (const [impl, ok] of impls) {
    for (const [label, weightDecay, decoupled, gradScale] of [
      ["no decay", 0, true, 1],
      ["AdamW wd 0.1", 0.1, true, 0.5],
      ["Adam L2 wd 0.05", 0.05, false, 1],
    ] as const) {
      it.skipIf(!ok)(`${impl}: ${label}${ok ? "" : skipNote}`, () => {
        const n = 10_007; // odd: exercises the vector tail
        const param = rand(n, 1);
        const m = new Float32Array(n);
        const v = new Float32Array(n);
        const p64 = Float64Array.from(param);
        const m64 = new Float64Array(n);
        const v64 = new Float64Array(n);
        for (let step = 1; step <= 5; step++) {
          const grad = rand(n, 100 + step, 0.3);
          const c = { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay, decoupled, step, gradScale };
          adamStep({ param, grad, m, v }, c, { impl });
          reference(p64, grad, m64, v64, c);
        }
        expect(maxDiff(param, p64)).toBeLessThan(1e-6);
        expect(maxDiff(m, m64)).toBeLessThan(1e-6);
        expect(maxDiff(v, v64)).toBeLessThan(1e-6);
      });
    }
  }
});

describe("adamStep equals tf.train.adam", () => {
  for (const [impl, ok] of impls) {
    it.skipIf(!ok)(`${impl}: 6 steps on three random tensors${ok ? "" : skipNote}`, () => {
      onBackend("cpu", () => {
        const sizes = [1, 257, 4096];
        const init = sizes.map((n, i) => rand(n, 7 + i));
        const vars = init.map((x, i) => tf.variable(tf.tensor1d(x), true, `adam_eq_${impl}_${i}`));
        const opt = tf.train.adam(2e-3, 0.9, 0.999, 1e-7);
        const ours = init.map((x) => ({
          param: Float32Array.from(x),
          m: new Float32Array(x.length),
          v: new Float32Array(x.length),
        }));
        for (let step = 1; step <= 6; step++) {
          const grads = sizes.map((n, i) => rand(n, 1000 * step + i, 0.5));
          tf.tidy(() => {
            opt.applyGradients(vars.map((v, i) => ({ name: v.name, tensor: tf.tensor1d(grads[i]!) })));
          });
          ours.forEach((o, i) => {
            adamStep(
              { ...o, grad: grads[i]! },
              { lr: 2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-7, weightDecay: 0, decoupled: false, step },
              { impl },
            );
          });
        }
        vars.forEach((v, i) => {
          expect(maxDiff(v.dataSync(), ours[i]!.param)).toBeLessThan(1e-6);
        });
        opt.dispose();
        for (const v of vars) v.dispose();
      });
    });
  }
});

describe("adamStep: bad input", () => {
  const ok = () => ({
    param: new Float32Array(4),
    grad: new Float32Array(4),
    m: new Float32Array(4),
    v: new Float32Array(4),
  });
  const c = { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0, decoupled: true, step: 1 };
  it("names the array whose length differs, with both lengths", () => {
    for (const key of ["grad", "m", "v"] as const) {
      const a = { ...ok(), [key]: new Float32Array(5) };
      expect(() => adamStep(a, c)).toThrow(
        new KernelError(
          "SHAPE_MISMATCH",
          `adamStep: ${key} has 5 elements but param has 4; param, grad, m and v must have one length (the parameter's size)`,
        ),
      );
    }
  });
  it("refuses non-Float32Array inputs, a step below 1 and betas outside [0, 1)", () => {
    expect(() => adamStep({ ...ok(), grad: new Float64Array(4) as unknown as Float32Array }, c)).toThrow(
      /grad must be a Float32Array, got Float64Array/,
    );
    expect(() => adamStep(ok(), { ...c, step: 0 })).toThrow(/step must be an integer >= 1, got 0/);
    expect(() => adamStep(ok(), { ...c, beta2: 1 })).toThrow(
      /beta1 and beta2 must be in \[0, 1\), got 0.9 and 1/,
    );
    expect(() => adamStep(ok(), { ...c, lr: Number.NaN })).toThrow(/lr must be a finite number, got NaN/);
  });
  it.skipIf(!nativeAvailable)(`the native binding itself checks exact lengths${skipNote}`, async () => {
    const { nativeAddon } = await import("../src/index.js");
    const a = ok();
    expect(() =>
      nativeAddon()!.adamUpdate(
        a.param,
        new Float32Array(8),
        a.m,
        a.v,
        1e-3,
        0.9,
        0.98,
        1e-8,
        0,
        0.1,
        0.02,
        1,
        true,
      ),
    ).toThrow(/adamUpdate: grad has 8 elements but param has 4/);
  });
  it("copyFloat32 copies and checks lengths", () => {
    const src = rand(1000, 3);
    const dst = new Float32Array(1000);
    copyFloat32(dst, src);
    expect(maxDiff(dst, src)).toBe(0);
    expect(() => copyFloat32(new Float32Array(3), src)).toThrow(/dst has 3 elements but src has 1000/);
  });
});
