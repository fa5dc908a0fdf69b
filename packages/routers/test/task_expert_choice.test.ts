import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { expertChoiceGating, staticTaskGating, taskGating } from "../src/index.js";
import { assertClose, ctx, env, onBackend, take } from "./helpers.js";

describe.each(env.backends)("task-level, static and expert-choice gating on %s", (backend) => {
  const run = <T>(f: () => T) => onBackend(backend, f);
  const taskOpts = {
    k: 2,
    softmaxOrder: "before" as const,
    renormalize: true,
    secondExpertSampling: false,
    capacityFactor: 0,
    minCapacity: 0,
    policy: "position" as const,
  };

  it("every token of a task gets its task's top-k experts and weights", () =>
    run(() => {
      const taskLogits = tf.tensor2d([
        [0, 5, 4, 0],
        [3, 0, 0, 6],
        [1, 1, 9, 1],
      ]);
      const taskIds = Int32Array.from([2, 0, 0, 1, 2, 1, 0]);
      const r = taskGating(taskLogits, taskOpts, ctx({ taskIds }));
      const want: Record<number, number[]> = { 0: [1, 2], 1: [3, 0], 2: [2, 0] };
      taskIds.forEach((task, t) => {
        expect([r.expert[t * 2], r.expert[t * 2 + 1]]).toEqual(want[task]);
      });
      const w = take(r.combineWeight);
      taskIds.forEach((task, t) => {
        const first = taskIds.indexOf(task);
        expect([w[t * 2], w[t * 2 + 1]]).toEqual([w[first * 2], w[first * 2 + 1]]);
      });
      expect(Array.from(r.metrics.usagePerTask ?? [])).toEqual([0, 3, 3, 0, 2, 0, 0, 2, 2, 0, 2, 0]);
      tf.dispose([taskLogits, r.auxLoss, r.zLoss]);
    }));

  it("task ids must exist and lie in range", () =>
    run(() => {
      const l = tf.zeros([3, 4]) as tf.Tensor2D;
      expect(() => taskGating(l, taskOpts, ctx())).toThrow(/needs ctx.taskIds/);
      expect(() => taskGating(l, taskOpts, ctx({ taskIds: Int32Array.from([0, 3]) }))).toThrow(
        /taskIds\[1\] = 3 is not in \[0, 3\) \(numTasks = 3\)/,
      );
      // padding tokens may carry any id
      const r = taskGating(
        l,
        taskOpts,
        ctx({ taskIds: Int32Array.from([0, 99]), padMask: Uint8Array.from([1, 0]) }),
      );
      expect(Array.from(r.pairs.dest.slice(2))).toEqual([-1, -1]);
      tf.dispose([l, r.combineWeight, r.auxLoss, r.zLoss]);
    }));

  it("static assignment: task i -> experts (i*k + j) mod E with weight 1/k", () => {
    const r = staticTaskGating(
      3,
      4,
      { k: 2, capacityFactor: 0, minCapacity: 0, policy: "position" },
      ctx({ taskIds: Int32Array.from([0, 1, 2]) }),
    );
    expect(Array.from(r.expert)).toEqual([0, 1, 2, 3, 0, 1]);
    assertClose(take(r.combineWeight), [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    expect(take(r.auxLoss)[0]).toBe(0);
    r.zLoss.dispose();
  });

  it("expert choice: each expert takes its C highest-scoring tokens", () =>
    run(() => {
      const rows = [
        [4, 0],
        [3, 1],
        [0, 5],
        [1, 1],
      ];
      const logits = tf.tensor2d(rows);
      // C = ceil(1 * 4 * 1 / 2) = 2
      const r = expertChoiceGating(logits, { k: 1, capacityFactor: 1, minCapacity: 0 }, ctx());
      expect(r.capacity).toBe(2);
      expect(r.k).toBeNull();
      const p = rows.map((row) => {
        const e = row.map(Math.exp);
        const s = e[0]! + e[1]!;
        return e.map((v) => v / s);
      });
      // expert 0 by p[:,0]: t0 (0.98), t1 (0.88); expert 1 by p[:,1]: t2 (0.99), t3 (0.5)
      expect(Array.from(r.pairs.token)).toEqual([0, 1, 2, 3]);
      expect(Array.from(r.pairs.dest)).toEqual([0, 1, 2, 3]);
      assertClose(take(r.combineWeight), [p[0]![0]!, p[1]![0]!, p[2]![1]!, p[3]![1]!]);
      expect(Array.from(r.metrics.tokensPerExpert)).toEqual([2, 2]);
      expect(r.metrics.unroutedFraction).toBe(0);
      tf.dispose([logits, r.auxLoss, r.zLoss]);
    }));
});
