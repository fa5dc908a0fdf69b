import * as fs from "node:fs";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { adamStep } from "@polymoe/kernels";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import {
  AdamW,
  labelSmoothedCrossEntropy,
  learningRate,
  OptimizerConfig,
  SafetensorsFile,
  writeSafetensors,
} from "../src/index.js";
import { assertClose, env, onBackend, take } from "./helpers.js";

describe.each(env.backends)("loss and optimizer on %s", (backend) => {
  const run = <T>(f: () => T) => onBackend(backend, f);

  it("label-smoothed cross-entropy: literal values, padding ignored", () =>
    run(() => {
      const rows = [
        [2, 1, 0],
        [0, 0, 0],
        [9, 9, 9],
      ];
      const logits = tf.tensor2d(rows);
      const lse = rows.map((r) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0)));
      const logp = rows.map((r, i) => r.map((v) => v - lse[i]!));
      const targets = Int32Array.from([0, 2, 1]);
      const mask = [1, 1, 0];
      const nll = (-logp[0]![0]! - logp[1]![2]!) / 2;
      const smooth =
        (-(logp[0]!.reduce((a, b) => a + b, 0) / 3) - logp[1]!.reduce((a, b) => a + b, 0) / 3) / 2;
      const r = labelSmoothedCrossEntropy(logits, targets, mask, 0.1);
      expect(r.tokens).toBe(2);
      assertClose(take(r.nll), [nll], { rtol: 1e-6 });
      assertClose(take(r.loss), [0.9 * nll + 0.1 * smooth], { rtol: 1e-6 });
      expect(() => labelSmoothedCrossEntropy(logits, Int32Array.from([0, 3, 1]), mask, 0.1)).toThrow(
        /target 3 at row 1 is outside the vocabulary \[0, 3\)/,
      );
      logits.dispose();
    }));

  it("without smoothing its gradient is softmax - onehot over the counted tokens", () =>
    run(() => {
      const logits = tf.tensor2d([
        [1, 2, 3],
        [0, -1, 1],
      ]);
      const g = take(
        tf.grad(
          (l: tf.Tensor) =>
            labelSmoothedCrossEntropy(l as tf.Tensor2D, Int32Array.from([2, 0]), [1, 1], 0).loss,
        )(logits),
      );
      const sm = (r: number[]) => {
        const e = r.map(Math.exp);
        const s = e.reduce((a, b) => a + b, 0);
        return e.map((v) => v / s);
      };
      const p = [sm([1, 2, 3]), sm([0, -1, 1])];
      assertClose(
        g,
        [
          p[0]![0]! / 2,
          p[0]![1]! / 2,
          (p[0]![2]! - 1) / 2,
          (p[1]![0]! - 1) / 2,
          p[1]![1]! / 2,
          p[1]![2]! / 2,
        ],
        {
          rtol: 1e-5,
        },
      );
      logits.dispose();
    }));

  it("AdamW matches a plain-loop reference over three steps, weight decay decoupled, norms not decayed", () =>
    run(() => {
      const cfg = OptimizerConfig.parse({ lr: 0.1, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.01 });
      const opt = new AdamW(cfg);
      const w = tf.variable(tf.tensor1d([1, -2, 3]), true, `w.${backend}`);
      const g = tf.variable(tf.tensor1d([0.5, 0.5]), true, `ln.g.${backend}`);
      const params = new Map([
        ["w", w],
        ["ln.g", g],
      ]);
      const ref = { w: [1, -2, 3], g: [0.5, 0.5], mw: [0, 0, 0], vw: [0, 0, 0], mg: [0, 0], vg: [0, 0] };
      const grads = [
        [0.1, -0.2, 0.3],
        [1, 1, -1],
        [-0.5, 0, 0.25],
      ];
      for (let step = 1; step <= 3; step++) {
        const gw = grads[step - 1]!;
        const gg = [gw[0]!, gw[1]!];
        tf.tidy(() =>
          opt.apply(
            params,
            new Map([
              ["w", tf.tensor1d(gw)],
              ["ln.g", tf.tensor1d(gg)],
            ]),
            0.1,
          ),
        );
        const upd = (p: number[], m: number[], v: number[], gr: number[], decay: number) =>
          p.forEach((_, i) => {
            m[i] = 0.9 * m[i]! + 0.1 * gr[i]!;
            v[i] = 0.99 * v[i]! + 0.01 * gr[i]! * gr[i]!;
            const mh = m[i]! / (1 - 0.9 ** step);
            const vh = v[i]! / (1 - 0.99 ** step);
            p[i] = p[i]! - 0.1 * (mh / (Math.sqrt(vh) + 1e-8) + decay * p[i]!);
          });
        upd(ref.w, ref.mw, ref.vw, gw, 0.01);
        upd(ref.g, ref.mg, ref.vg, gg, 0);
      }
      assertClose(w.dataSync(), ref.w, { rtol: 1e-5 });
      assertClose(g.dataSync(), ref.g, { rtol: 1e-5 });
      // state round-trips exactly
      const st = opt.state();
      const opt2 = new AdamW(cfg);
      opt2.load(st, params);
      expect(opt2.state().step).toBe(3);
      expect(Array.from(opt2.state().tensors.get("w.m")!.values)).toEqual(
        Array.from(st.tensors.get("w.m")!.values),
      );
      opt.dispose();
      opt2.dispose();
      w.dispose();
      g.dispose();
    }));
});

describe("schedules and safetensors", () => {
  it("inverse-sqrt and cosine learning rates", () => {
    const inv = { type: "inverse-sqrt" as const, warmupSteps: 100, initLr: 0 };
    expect(learningRate(inv, 1e-3, 50)).toBeCloseTo(5e-4);
    expect(learningRate(inv, 1e-3, 100)).toBeCloseTo(1e-3);
    expect(learningRate(inv, 1e-3, 400)).toBeCloseTo(5e-4);
    const cos = { type: "cosine" as const, warmupSteps: 10, totalSteps: 110, minLr: 1e-5 };
    expect(learningRate(cos, 1e-3, 5)).toBeCloseTo(5e-4);
    expect(learningRate(cos, 1e-3, 60)).toBeCloseTo((1e-3 + 1e-5) / 2);
    expect(learningRate(cos, 1e-3, 500)).toBeCloseTo(1e-5);
    // Without totalSteps the decay ends at the run's maxSteps.
    const run = { type: "cosine" as const, warmupSteps: 10, minLr: 0 };
    expect(learningRate(run, 1e-3, 60, 110)).toBeCloseTo(5e-4);
    expect(learningRate(run, 1e-3, 60, 210)).toBeCloseTo((1e-3 * (1 + Math.cos(Math.PI / 4))) / 2);
    expect(() => learningRate(run, 1e-3, 60)).toThrow(/totalSteps is not set/);
  });

  it("round-trips tensors, reads lazily, and names a truncated file", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "st-"));
    const file = path.join(dir, "t.safetensors");
    writeSafetensors(
      file,
      new Map([
        ["a", { dtype: "F32" as const, shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) }],
        ["b", { dtype: "I32" as const, shape: [3], data: Int32Array.from([7, 8, 9]) }],
      ]),
      { note: "x" },
    );
    expect(readdirSync(dir)).toEqual(["t.safetensors"]); // no temporary left behind
    const f = SafetensorsFile.open(file);
    expect(f.metadata.note).toBe("x");
    expect(Array.from(f.read("b").data)).toEqual([7, 8, 9]);
    expect(f.bytesRead).toBe(12);
    expect(Array.from(f.read("a").data)).toEqual([1, 2, 3, 4]);
    f.close();
    const buf = Buffer.from(fs.readFileSync(file));
    writeFileSync(file, buf.subarray(0, buf.length - 4));
    expect(() => SafetensorsFile.open(file)).toThrow(/truncated file/);
    writeFileSync(file, "garbage!garbage!");
    expect(() => SafetensorsFile.open(file)).toThrow(/not a valid safetensors file/);
  });
});

describe("the trainer's AdamW and @polymoe/kernels' adamStep make one update", () => {
  const rnd = (n: number, seed: number, scale = 1) => {
    let s = seed >>> 0;
    return Float32Array.from({ length: n }, () => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return (s / 4294967296 - 0.5) * scale;
    });
  };
  for (const [type, weightDecay] of [
    ["adamw", 0],
    ["adamw", 0.1],
    ["adam", 0.05],
  ] as const) {
    it(`${type}, weight decay ${weightDecay}: tfjs-ops path on cpu vs adamStep (js and auto), 8 steps`, () =>
      onBackend("cpu", () => {
        const cfg = OptimizerConfig.parse({ type, lr: 3e-3, betas: [0.9, 0.98], eps: 1e-8, weightDecay });
        const opt = new AdamW(cfg);
        const n = 1031;
        const init = rnd(n, 5);
        const w = tf.variable(tf.tensor1d(init), true, `adam_eq.${type}.${weightDecay}`);
        const params = new Map([["w", w]]);
        const impls = (["js", "auto"] as const).map((impl) => ({
          impl,
          param: Float32Array.from(init),
          m: new Float32Array(n),
          v: new Float32Array(n),
        }));
        for (let step = 1; step <= 8; step++) {
          const grad = rnd(n, 50 + step, 0.4);
          const lr = 3e-3 * (step / 8);
          tf.tidy(() => opt.apply(params, new Map([["w", tf.tensor1d(grad)]]), lr, 0.5));
          for (const x of impls) {
            adamStep(
              { param: x.param, grad, m: x.m, v: x.v },
              {
                lr,
                beta1: 0.9,
                beta2: 0.98,
                eps: 1e-8,
                weightDecay,
                decoupled: type === "adamw",
                step,
                gradScale: 0.5,
              },
              { impl: x.impl },
            );
          }
        }
        const got = w.dataSync();
        const st = opt.state().tensors;
        for (const x of impls) {
          assertClose(x.param, got, { atol: 1e-6, rtol: 0 });
          assertClose(x.m, st.get("w.m")!.values, { atol: 1e-6, rtol: 0 });
          assertClose(x.v, st.get("w.v")!.values, { atol: 1e-6, rtol: 0 });
        }
        opt.dispose();
        w.dispose();
      }));
  }
});
