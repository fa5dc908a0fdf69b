import { labelSmoothedCrossEntropy } from "@polymoe/train";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import {
  DistillError,
  disposeTargets,
  distillationLoss,
  fullTargets,
  type KdLossOptions,
  type TeacherTargets,
  topKTargets,
} from "../src/index.js";
import { assertClose, assertNoLeak, env, onBackend, rand, referenceKd, softmax } from "./helpers.js";

// Tiny literal case: N = 3 rows (row 1 is padding), V = 4, alpha = 0.5, T = 2, eps = 0.1.
const Z = [1.0, 2.0, 0.5, -1.0, 0.3, 0.3, 0.3, 0.3, -0.5, 0.0, 1.5, 0.5];
const TEACHER = [2.0, 1.0, 0.0, -2.0, 9.0, -9.0, 9.0, -9.0, 0.0, 0.0, 3.0, 1.0];
const TARGETS = Int32Array.from([1, 0, 2]);
const MASK = [1, 0, 1];
const OPTS: KdLossOptions = { alpha: 0.5, temperature: 2, labelSmoothing: 0.1 };

/** Values of a loss's scalars, then disposed. */
function values(f: () => ReturnType<typeof distillationLoss>) {
  return tf.tidy(() => {
    const l = f();
    return {
      loss: l.loss.dataSync()[0] as number,
      kl: l.kl.dataSync()[0] as number,
      ce: l.ce.dataSync()[0] as number,
      nll: l.nll.dataSync()[0] as number,
      tokens: l.tokens,
    };
  });
}

/** d loss / d logits through tfjs autodiff. */
function gradient(
  z: Float32Array,
  shape: [number, number],
  teacher: TeacherTargets,
  targets: Int32Array,
  mask: ArrayLike<number>,
  opts: KdLossOptions,
): Float32Array {
  return tf.tidy(() => {
    const g = tf.grad(
      (x: tf.Tensor) => distillationLoss(x as tf.Tensor2D, teacher, targets, mask, opts).loss,
    )(tf.tensor2d(z, shape));
    return Float32Array.from(g.dataSync() as Float32Array);
  });
}

const realRowsOf = (mask: ArrayLike<number>) =>
  Array.from(mask, (m, i) => (m ? i : -1)).filter((i) => i >= 0);

describe.each(env.backends)("word-level KD loss on %s", (backend) => {
  const run = <T>(f: () => T) => onBackend(backend, f);

  it("equals the hand-computed value on tiny logits (alpha 0.5, T 2, eps 0.1, one padded row)", () =>
    run(() => {
      // By hand (float64), rows 0 and 2:
      //   p0 = softmax([2, 1, 0, -2] / 2) = [0.473991, 0.287490, 0.174371, 0.064148]
      //   q0 = softmax([1, 2, 0.5, -1] / 2) = [0.263477, 0.434400, 0.205196, 0.096928]
      //   KL0 = sum p0 log(p0 / q0) = 0.104806650;  CE0 = 0.9 * -log s0[1] + 0.1 * mean -log s0 = 0.632681898
      //   p2 = softmax([0, 0, 3, 1] / 2) = [0.122995, 0.122995, 0.551225, 0.202785]
      //   KL2 = 0.044024080;  CE2 = 0.658506390
      //   loss = 0.5 * 2^2 * (KL0 + KL2) / 2 + 0.5 * (CE0 + CE2) / 2 = 0.471627802
      const teacherLogits = tf.tensor2d(TEACHER, [3, 4]);
      const teacher = fullTargets(teacherLogits, MASK, 2);
      const v = assertNoLeak(() =>
        values(() => distillationLoss(tf.tensor2d(Z, [3, 4]), teacher, TARGETS, MASK, OPTS)),
      );
      expect(v.tokens).toBe(2);
      assertClose([v.kl, v.ce, v.nll, v.loss], [0.07441536486, 0.64559414401, 0.52059414401, 0.47162780173], {
        rtol: 2e-6,
        atol: 1e-7,
      });
      // Top-2 of the teacher: spread keeps KL = 0.081851184, renormalize 0.464605828.
      for (const [tail, kl, loss] of [
        ["spread", 0.08185118366, 0.48649943933],
        ["renormalize", 0.46460582829, 1.25200872859],
      ] as const) {
        const top2 = topKTargets(teacherLogits, MASK, 2, 2);
        const t = assertNoLeak(() =>
          values(() => distillationLoss(tf.tensor2d(Z, [3, 4]), top2, TARGETS, MASK, { ...OPTS, tail })),
        );
        assertClose([t.kl, t.loss], [kl, loss], { rtol: 2e-6, atol: 1e-7, what: tail });
      }
      disposeTargets(teacher);
      teacherLogits.dispose();
    }));

  it("alpha = 1: the gradient is that of T^2 x cross-entropy against the teacher's softened distribution", () =>
    run(() => {
      const N = 6;
      const V = 7;
      const T = 2.5;
      const mask = [1, 1, 0, 1, 1, 0];
      const targets = Int32Array.from([3, 0, 0, 6, 2, 0]);
      const z = rand(N * V, 11, 3);
      const t = rand(N * V, 12, 4);
      const rows = realRowsOf(mask);
      const pT = rows.map((r) => softmax(t.subarray(r * V, (r + 1) * V), T));
      // Plain loop: f(z) = T^2 * mean over real rows of -sum_v p_v log softmax(z / T)_v.
      const ceSoft = (zz: ArrayLike<number>) =>
        (T *
          T *
          rows.reduce((acc, row, r) => {
            const q = softmax(
              Array.from({ length: V }, (_, v) => zz[row * V + v] as number),
              T,
            );
            return acc - (pT[r] as number[]).reduce((s, p, v) => s + p * Math.log(q[v] as number), 0);
          }, 0)) /
        rows.length;
      // Its gradient by central differences in float64 (an oracle independent of any derivation).
      const h = 1e-5;
      const oracle = Array.from({ length: N * V }, (_, i) => {
        const up = Float64Array.from(z);
        const down = Float64Array.from(z);
        up[i] = (up[i] as number) + h;
        down[i] = (down[i] as number) - h;
        return (ceSoft(up) - ceSoft(down)) / (2 * h);
      });
      const teacherLogits = tf.tensor2d(t, [N, V]);
      const teacher = fullTargets(teacherLogits, mask, T);
      const opts = { alpha: 1, temperature: T, labelSmoothing: 0.1 };
      const g = assertNoLeak(() => gradient(z, [N, V], teacher, targets, mask, opts));
      assertClose(g, oracle, { rtol: 1e-4, atol: 2e-6, what: "d KD / d z" });
      // The padded rows get no gradient at all.
      for (const row of [2, 5])
        for (let v = 0; v < V; v++) expect(Math.abs(g[row * V + v] as number)).toBe(0);
      // And the value is the same cross-entropy minus the teacher's entropy (T^2 x KL).
      const entropy =
        (T * T * pT.reduce((s, p) => s - p.reduce((a, x) => a + x * Math.log(x), 0), 0)) / rows.length;
      const v = values(() => distillationLoss(tf.tensor2d(z, [N, V]), teacher, targets, mask, opts));
      expect(v.loss).toBeCloseTo(ceSoft(z) - entropy, 5);
      disposeTargets(teacher);
      teacherLogits.dispose();
    }));

  it("forward and gradient match the plain-loop reference for any alpha, T, smoothing (full teacher)", () =>
    run(() => {
      const N = 8;
      const V = 9;
      const mask = [1, 0, 1, 1, 1, 0, 0, 1];
      const targets = Int32Array.from([0, 3, 8, 1, 4, 4, 0, 7]);
      for (const [alpha, T, eps, seed] of [
        [0.5, 1, 0.1, 1],
        [0.3, 2, 0, 2],
        [0.9, 0.5, 0.2, 3],
      ] as const) {
        const z = rand(N * V, 20 + seed, 2);
        const t = rand(N * V, 30 + seed, 5);
        const rows = realRowsOf(mask);
        const ref = referenceKd(
          z,
          V,
          rows.map((r) => softmax(t.subarray(r * V, (r + 1) * V), T)),
          targets,
          mask,
          alpha,
          T,
          eps,
        );
        const teacherLogits = tf.tensor2d(t, [N, V]);
        const teacher = fullTargets(teacherLogits, mask, T);
        const opts = { alpha, temperature: T, labelSmoothing: eps };
        const v = assertNoLeak(() =>
          values(() => distillationLoss(tf.tensor2d(z, [N, V]), teacher, targets, mask, opts)),
        );
        assertClose([v.loss, v.kl, v.ce, v.nll], [ref.loss, ref.kl, ref.ce, ref.nll], {
          rtol: 1e-5,
          atol: 1e-6,
        });
        assertClose(gradient(z, [N, V], teacher, targets, mask, opts), ref.grad, {
          rtol: 1e-4,
          atol: 1e-6,
          what: `grad alpha ${alpha} T ${T}`,
        });
        disposeTargets(teacher);
        teacherLogits.dispose();
      }
    }));

  it("alpha = 0 is exactly the trainer's label-smoothed cross-entropy", () =>
    run(() => {
      const N = 5;
      const V = 6;
      const mask = [1, 1, 0, 1, 0];
      const targets = Int32Array.from([5, 0, 0, 2, 0]);
      const z = tf.tensor2d(rand(N * V, 41, 3), [N, V]);
      const teacherLogits = tf.tensor2d(rand(N * V, 42, 3), [N, V]);
      const teacher = fullTargets(teacherLogits, mask, 1);
      const kd = values(() =>
        distillationLoss(z, teacher, targets, mask, { alpha: 0, temperature: 1, labelSmoothing: 0.1 }),
      );
      const ls = tf.tidy(() => labelSmoothedCrossEntropy(z, targets, mask, 0.1).loss.dataSync()[0] as number);
      expect(kd.loss).toBeCloseTo(ls, 6);
      disposeTargets(teacher);
      tf.dispose([z, teacherLogits]);
    }));

  it("kl, ce and nll are differentiable too: their gradients match autodiff of the plain formulas", () =>
    run(() => {
      const N = 5;
      const V = 8;
      const T = 1.5;
      const mask = [1, 0, 1, 1, 1];
      const targets = Int32Array.from([2, 0, 7, 7, 1]);
      const z = tf.tensor2d(rand(N * V, 61, 2), [N, V]);
      const teacherLogits = tf.tensor2d(rand(N * V, 62, 3), [N, V]);
      const rows = realRowsOf(mask);
      const pT = rows.map((r) => softmax(rand(N * V, 62, 3).subarray(r * V, (r + 1) * V), T));
      const opts = { alpha: 0.3, temperature: T, labelSmoothing: 0.2 };
      for (const teacher of [fullTargets(teacherLogits, mask, T), topKTargets(teacherLogits, mask, T, V)]) {
        const grad = (pick: (l: ReturnType<typeof distillationLoss>) => tf.Scalar) =>
          tf.tidy(() =>
            Float32Array.from(
              tf
                .grad((x: tf.Tensor) =>
                  pick(distillationLoss(x as tf.Tensor2D, teacher, targets, mask, opts)),
                )(z)
                .dataSync(),
            ),
          );
        const autodiff = (f: (x: tf.Tensor2D) => tf.Scalar) =>
          tf.tidy(() =>
            Float32Array.from(
              tf
                .grad((x: tf.Tensor) => f(x as tf.Tensor2D))(z)
                .dataSync(),
            ),
          );
        assertClose(
          grad((l) => l.nll),
          autodiff((x) => labelSmoothedCrossEntropy(x, targets, mask, 0).loss),
          {
            rtol: 1e-4,
            atol: 1e-6,
            what: "d nll",
          },
        );
        assertClose(
          grad((l) => l.ce),
          autodiff((x) => labelSmoothedCrossEntropy(x, targets, mask, 0.2).loss),
          {
            rtol: 1e-4,
            atol: 1e-6,
            what: "d ce",
          },
        );
        const ref = referenceKd(
          tf.tidy(() => z.dataSync()),
          V,
          pT,
          targets,
          mask,
          1,
          T,
          0,
        );
        assertClose(
          grad((l) => l.kl),
          ref.grad.map((g) => g / (T * T)),
          { rtol: 1e-4, atol: 1e-6, what: "d kl" },
        );
        // A weighted mix of the four, as autodiff composes them.
        const mixed = grad(
          (l) =>
            tf.addN([tf.mul(l.loss, 2), tf.mul(l.kl, -1), tf.mul(l.ce, 0.5), tf.mul(l.nll, 3)]) as tf.Scalar,
        );
        const parts = [grad((l) => l.loss), grad((l) => l.kl), grad((l) => l.ce), grad((l) => l.nll)];
        assertClose(
          mixed,
          parts[0]!.map(
            (_, i) => 2 * parts[0]![i]! - parts[1]![i]! + 0.5 * parts[2]![i]! + 3 * parts[3]![i]!,
          ),
          { rtol: 1e-4, atol: 1e-6, what: "mixed" },
        );
        disposeTargets(teacher);
      }
      tf.dispose([z, teacherLogits]);
    }));

  it("top-k targets: k = V gives the full loss; k < V matches the plain-loop reference of each tail", () =>
    run(() => {
      const N = 6;
      const V = 10;
      const T = 1.5;
      const mask = [1, 1, 0, 1, 1, 1];
      const targets = Int32Array.from([1, 9, 0, 4, 4, 7]);
      const z = rand(N * V, 51, 2);
      const t = rand(N * V, 52, 6);
      const rows = realRowsOf(mask);
      const teacherLogits = tf.tensor2d(t, [N, V]);
      const opts = { alpha: 0.7, temperature: T, labelSmoothing: 0.1 };
      const full = fullTargets(teacherLogits, mask, T);
      const all = topKTargets(teacherLogits, mask, T, V);
      const fullV = values(() => distillationLoss(tf.tensor2d(z, [N, V]), full, targets, mask, opts));
      const allV = values(() => distillationLoss(tf.tensor2d(z, [N, V]), all, targets, mask, opts));
      expect(allV.loss).toBeCloseTo(fullV.loss, 5);
      assertClose(
        gradient(z, [N, V], all, targets, mask, opts),
        gradient(z, [N, V], full, targets, mask, opts),
        {
          rtol: 1e-4,
          atol: 1e-6,
        },
      );
      const K = 3;
      const top = topKTargets(teacherLogits, mask, T, K);
      expect(top.rows).toBe(rows.length);
      for (const tail of ["spread", "renormalize"] as const) {
        const approx = rows.map((row, r) => {
          const p = softmax(t.subarray(row * V, (row + 1) * V), T);
          const order = p.map((_, v) => v).sort((a, b) => (p[b] as number) - (p[a] as number));
          const kept = order.slice(0, K);
          expect(Array.from(top.indices.subarray(r * K, (r + 1) * K))).toEqual(kept);
          const mass = kept.reduce((s, v) => s + (p[v] as number), 0);
          return p.map((pv, v) =>
            kept.includes(v)
              ? tail === "spread"
                ? pv
                : pv / mass
              : tail === "spread"
                ? (1 - mass) / (V - K)
                : 0,
          );
        });
        const ref = referenceKd(z, V, approx, targets, mask, opts.alpha, T, opts.labelSmoothing);
        const o = { ...opts, tail };
        const v = assertNoLeak(() =>
          values(() => distillationLoss(tf.tensor2d(z, [N, V]), top, targets, mask, o)),
        );
        assertClose([v.loss, v.kl], [ref.loss, ref.kl], { rtol: 1e-5, atol: 1e-6, what: tail });
        assertClose(gradient(z, [N, V], top, targets, mask, o), ref.grad, {
          rtol: 1e-4,
          atol: 1e-6,
          what: tail,
        });
      }
      disposeTargets(full);
      teacherLogits.dispose();
    }));

  it("stays finite on extreme logits and on a batch without real tokens", () =>
    run(() => {
      const V = 5;
      const z = [80, -80, 0, 40, -40, -60, 60, 0, 0, 1];
      const t = [-90, 90, 0, 0, 0, 100, -100, 3, 2, 1];
      const mask = [1, 1];
      const targets = Int32Array.from([1, 0]);
      const teacherLogits = tf.tensor2d(t, [2, V]);
      for (const teacher of [fullTargets(teacherLogits, mask, 1), topKTargets(teacherLogits, mask, 1, 2)]) {
        const v = values(() =>
          distillationLoss(tf.tensor2d(z, [2, V]), teacher, targets, mask, { ...OPTS, temperature: 1 }),
        );
        expect(Number.isFinite(v.loss)).toBe(true);
        expect(v.kl).toBeGreaterThan(0);
        const g = gradient(Float32Array.from(z), [2, V], teacher, targets, mask, { ...OPTS, temperature: 1 });
        expect(g.every(Number.isFinite)).toBe(true);
        disposeTargets(teacher);
      }
      teacherLogits.dispose();
      const padded = tf.tensor2d(z, [2, V]);
      const none = fullTargets(padded, [0, 0], 2);
      const v = values(() => distillationLoss(padded, none, targets, [0, 0], OPTS));
      expect(v).toEqual({ loss: 0, kl: 0, ce: 0, nll: 0, tokens: 0 });
      disposeTargets(none);
      padded.dispose();
    }));
});

describe("word-level KD loss: bad input", () => {
  const z = tf.tensor2d(Z, [3, 4]);
  const teacherLogits = tf.tensor2d(TEACHER, [3, 4]);
  const teacher = fullTargets(teacherLogits, MASK, 2);
  const call =
    (o: Partial<KdLossOptions>, t: TeacherTargets = teacher, mask: number[] = MASK) =>
    () =>
      tf.tidy(() => {
        distillationLoss(z, t, TARGETS, mask, { ...OPTS, ...o });
      });
  const oneLine = (f: () => void, code: string, re: RegExp) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(DistillError);
      expect((e as DistillError).code).toBe(code);
      expect((e as Error).message).toMatch(re);
      expect((e as Error).message).not.toContain("\n");
      return;
    }
    throw new Error("expected an error");
  };

  it("alpha outside [0, 1], a bad temperature or smoothing: one clear line each", () => {
    oneLine(call({ alpha: 1.5 }), "INVALID_ARGUMENT", /alpha must be in \[0, 1\] .*got 1.5/);
    oneLine(call({ alpha: -0.1 }), "INVALID_ARGUMENT", /alpha must be in \[0, 1\] .*got -0.1/);
    oneLine(call({ alpha: Number.NaN }), "INVALID_ARGUMENT", /alpha must be in \[0, 1\] .*got NaN/);
    oneLine(call({ temperature: 0 }), "INVALID_ARGUMENT", /temperature must be a finite number > 0, got 0/);
    oneLine(call({ labelSmoothing: 1 }), "INVALID_ARGUMENT", /label smoothing must be in \[0, 1\), got 1/);
    oneLine(call({ temperature: 1 }), "INVALID_ARGUMENT", /softened at temperature 2, the loss uses 1/);
  });

  it("teacher targets of another batch or another vocabulary: one clear line each", () => {
    oneLine(
      call({}, teacher, [1, 1, 1]),
      "INVALID_ARGUMENT",
      /cover 2 real target tokens, the batch has 3; they belong to another batch/,
    );
    const wide = fullTargets(tf.tensor2d(rand(3 * 6, 1), [3, 6]), MASK, 2);
    oneLine(call({}, wide), "VOCAB_MISMATCH", /teacher vocabulary 6, student vocabulary 4/);
    const top: TeacherTargets = {
      kind: "topk",
      temperature: 2,
      rows: 2,
      k: 1,
      indices: Int32Array.from([1, 7]),
      logProbs: Float32Array.from([-0.1, -0.2]),
    };
    oneLine(call({}, top), "VOCAB_MISMATCH", /teacher token id 7 is outside the student vocabulary \[0, 4\)/);
    disposeTargets(wide);
  });

  it("leaves no tensors behind when it throws", () => {
    assertNoLeak(() => {
      try {
        call({ alpha: 2 })();
      } catch {
        // expected
      }
    });
  });
});
