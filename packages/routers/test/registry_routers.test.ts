import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { createRouter, parseRouterConfig, Rng, RoutingError, temperatureAt } from "../src/index.js";
import { assertClose, env, finiteDifferences, onBackend, rand, take } from "./helpers.js";

describe("router registry and configs", () => {
  it("fills defaults and rejects unknown routers by listing the valid ones", () => {
    expect(parseRouterConfig({ type: "topk" })).toMatchObject({
      type: "topk",
      k: 2,
      capacityFactor: 1.25,
      overflow: "position",
    });
    expect(() => parseRouterConfig({ type: "tpok" })).toThrow(
      /router.type: unknown router "tpok" \(did you mean 'topk'\?\); valid: topk, task, static-task, expert-choice/,
    );
    try {
      parseRouterConfig({ type: "topk" } as unknown as { type: "x" });
    } catch {
      expect.unreachable();
    }
    expect(() => parseRouterConfig({ type: "gshard" })).toThrow(RoutingError);
  });

  it("unknown keys fail with the nearest valid key; impossible values name the field", () => {
    expect(() => parseRouterConfig({ type: "topk", capacityFactr: 2 }, "model.layers[1].router")).toThrow(
      /model.layers\[1\].router.capacityFactr: unknown key \(did you mean 'capacityFactor'\?\)/,
    );
    expect(() => parseRouterConfig({ type: "task", k: 2 })).toThrow(
      /router.numTasks: required \(expected number\)/,
    );
    expect(() => parseRouterConfig({ type: "topk", k: 0 })).toThrow(/router.k: .* got 0/);
  });

  it("temperature schedules", () => {
    const s = { start: 2, end: 0.5, steps: 100, kind: "linear" as const };
    expect(temperatureAt(s, 0)).toBe(2);
    expect(temperatureAt(s, 50)).toBeCloseTo(1.25);
    expect(temperatureAt(s, 500)).toBe(0.5);
    expect(temperatureAt({ ...s, kind: "cosine" }, 50)).toBeCloseTo(1.25);
    expect(temperatureAt({ ...s, kind: "exponential" }, 50)).toBeCloseTo(1);
    expect(temperatureAt(1.5, 10)).toBe(1.5);
    expect(temperatureAt(s)).toBe(0.5); // evaluation: the final temperature
  });
});

describe.each(env.backends)("routers on %s", (backend) => {
  const run = <T>(f: () => T) => onBackend(backend, f);

  it("a top-k router's combine weights and aux loss differentiate correctly w.r.t. the gate", () =>
    run(() => {
      const [T, M, E] = [6, 4, 3];
      const router = createRouter(
        { type: "topk", k: 2, capacityFactor: 0 },
        { dModel: M, numExperts: E, seed: 3, name: `fd.${backend}` },
      );
      const x = tf.tensor2d(rand(T * M, 41, 1), [T, M]);
      const c = tf.tensor1d(rand(T * 2, 42));
      const gate = router.variables.gate as tf.Variable;
      // Gates of order 1 keep every token's top-2 set away from ties, so the
      // finite-difference steps below never change which experts are chosen.
      const gate0 = rand(M * E, 43, 1);
      gate.assign(tf.tensor2d(gate0, [M, E]));
      const loss = () => {
        const r = router.route(x, { training: false, rng: new Rng(1) });
        return tf.add(tf.sum(tf.mul(r.combineWeight, c)), tf.mul(r.auxLoss, 0.3)) as tf.Scalar;
      };
      const { grads } = tf.variableGrads(loss, [gate]);
      const analytic = take(grads[gate.name] as tf.Tensor);
      const numeric = finiteDifferences(
        (p) => {
          gate.assign(tf.tensor2d(p, [M, E]));
          return tf.tidy(() => loss().dataSync()[0] as number);
        },
        gate0,
        Array.from(gate0.keys()),
        1e-3,
      );
      // float32 central differences with eps 1e-3 are good to ~1e-3 here.
      assertClose(analytic, numeric, { rtol: 1e-2, atol: 2e-3 });
      tf.dispose([x, c]);
      router.dispose();
    }));

  it("task routers read task ids; temperature and jitter noise are applied in training only", () =>
    run(() => {
      const router = createRouter(
        {
          type: "task",
          numTasks: 3,
          k: 2,
          temperature: { start: 2, end: 1, steps: 10 },
          noise: { type: "jitter", eps: 0.5 },
        },
        { dModel: 8, numExperts: 4, seed: 5, name: `dec.1.router.${backend}` },
      );
      expect(Object.keys(router.variables).sort()).toEqual(["gate", "taskEmbedding"]);
      expect((router.variables.gate as tf.Variable).name).toBe(`dec.1.router.${backend}.gate`);
      const x = tf.zeros([5, 8]) as tf.Tensor2D;
      const taskIds = Int32Array.from([0, 1, 2, 1, 0]);
      const r = router.route(x, { training: false, rng: new Rng(1), taskIds, step: 5 });
      expect(r.metrics.temperature).toBeCloseTo(1.5);
      expect([r.expert[0], r.expert[1]]).toEqual([r.expert[8], r.expert[9]]);
      expect(() =>
        router.route(x, { training: false, rng: new Rng(1), taskIds: Int32Array.from([0]) }),
      ).toThrow(/taskIds has 1 entries but x has 5 tokens/);
      tf.dispose([x, r.combineWeight, r.auxLoss, r.zLoss]);
      router.dispose();
    }));

  it("noisy top-k adds a learned noise projection in training", () =>
    run(() => {
      const router = createRouter(
        { type: "topk", k: 1, noise: { type: "noisy-topk" } },
        { dModel: 4, numExperts: 4, seed: 9, name: `noisy.${backend}` },
      );
      expect(Object.keys(router.variables).sort()).toEqual(["gate", "noise"]);
      const x = tf.tensor2d(rand(200 * 4, 51), [200, 4]);
      const a = router.route(x, { training: true, rng: new Rng(1) });
      const b = router.route(x, { training: false, rng: new Rng(1) });
      const differ = a.expert.some((e, i) => e !== b.expert[i]);
      expect(differ).toBe(true);
      tf.dispose([x, a.combineWeight, a.auxLoss, a.zLoss, b.combineWeight, b.auxLoss, b.zLoss]);
      router.dispose();
    }));
});
