import { Rng } from "@polymoe/routers";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { type ModelBatch, type ModelConfigInput, Transformer } from "../src/index.js";
import { assertClose, assertNoLeak, env, onBackend, take, uniq } from "./helpers.js";

const V = 40;
const base: ModelConfigInput = {
  vocabSize: V,
  dModel: 16,
  heads: 4,
  dFF: 32,
  encoderLayers: 2,
  decoderLayers: 2,
  dropout: 0.1,
  maxLength: 32,
};
const taskMoe: ModelConfigInput = {
  ...base,
  moe: {
    encoder: { numExperts: 4, router: { type: "topk", k: 2, capacityFactor: 0, evalCapacityFactor: 0 } },
    decoder: { numExperts: [6], router: { type: "task", k: 2, numTasks: 3 }, taskKey: "target-language" },
  },
};

/** Sentences of given lengths padded to the longest (token 0 = pad). */
function batchOf(src: number[][], tgt: number[][], lang: number[]): ModelBatch {
  const B = src.length;
  const S = Math.max(...src.map((s) => s.length));
  const T = Math.max(...tgt.map((s) => s.length));
  const b: ModelBatch = {
    batch: B,
    srcLen: S,
    tgtLen: T,
    src: new Int32Array(B * S),
    tgtIn: new Int32Array(B * T),
    srcMask: new Uint8Array(B * S),
    tgtMask: new Uint8Array(B * T),
    taskIds: { "target-language": Int32Array.from(lang) },
  };
  src.forEach((s, i) => {
    s.forEach((t, j) => {
      b.src[i * S + j] = t;
      b.srcMask[i * S + j] = 1;
    });
  });
  tgt.forEach((s, i) => {
    s.forEach((t, j) => {
      b.tgtIn[i * T + j] = t;
      b.tgtMask[i * T + j] = 1;
    });
  });
  return b;
}

const evalCtx = () => ({ training: false, rng: new Rng(1) });

describe.each(env.backends)("Transformer on %s", (backend) => {
  const run = <T>(f: () => T) => onBackend(backend, f);

  it("builds dense and MoE stacks with the right parameter groups", () =>
    run(() => {
      const dense = new Transformer(base, { seed: 1, namespace: uniq("dense") });
      const moe = new Transformer(taskMoe, { seed: 1, namespace: uniq("moe") });
      expect(dense.moeLayers()).toHaveLength(0);
      expect(moe.moeLayers().map((l) => l.name)).toEqual(["encoder.layers.1", "decoder.layers.1"]);
      const groups = moe.parameterGroups();
      expect([...groups.expert.keys()].every((k) => k.includes(".ffn.experts."))).toBe(true);
      expect(groups.expert.size).toBe(8); // w1 w2 b1 b2 in two MoE layers
      expect(groups.expert.size + groups.dense.size).toBe(moe.variables().size);
      expect(moe.numParameters()).toBeGreaterThan(dense.numParameters());
      dense.dispose();
      moe.dispose();
    }));

  it("incremental decoding reproduces the teacher-forced logits position by position", () =>
    run(() => {
      const model = new Transformer(taskMoe, { seed: 2, namespace: uniq("inc") });
      const b = batchOf(
        [
          [5, 6, 7, 8],
          [9, 10],
        ],
        [
          [1, 11, 12, 13],
          [2, 14, 15],
        ],
        [0, 2],
      );
      const full = tf.tidy(() => take(model.forward(b, evalCtx()).logits));
      tf.tidy(() => {
        const mem = model.encode(b, new Rng(1));
        let state = model.initialState();
        for (let t = 0; t < b.tgtLen; t++) {
          const tokens = Int32Array.from({ length: b.batch }, (_, i) => b.tgtIn[i * b.tgtLen + t] as number);
          const step = model.decodeStep(mem, state, tokens, new Rng(1));
          state = step.state;
          const got = step.logits.dataSync();
          for (let i = 0; i < b.batch; i++) {
            if (!b.tgtMask[i * b.tgtLen + t]) continue;
            const row = (i * b.tgtLen + t) * V;
            assertClose(got.subarray(i * V, (i + 1) * V), full.subarray(row, row + V), {
              rtol: 1e-4,
              atol: 1e-5,
              what: `pos ${t} sent ${i}`,
            });
          }
        }
      });
      model.dispose();
    }));

  it("padding and future tokens do not change a sentence's logits", () =>
    run(() => {
      const model = new Transformer({ ...base, moe: taskMoe.moe }, { seed: 3, namespace: uniq("pad") });
      const alone = batchOf([[5, 6, 7]], [[1, 8, 9]], [1]);
      const padded = batchOf(
        [
          [5, 6, 7],
          [9, 10, 11, 12, 13, 14],
        ],
        [
          [1, 8, 9],
          [2, 3, 4, 5, 6],
        ],
        [1, 0],
      );
      const a = tf.tidy(() => take(model.forward(alone, evalCtx()).logits));
      const p = tf.tidy(() => take(model.forward(padded, evalCtx()).logits));
      for (let t = 0; t < 3; t++)
        assertClose(p.subarray(t * V, (t + 1) * V), a.subarray(t * V, (t + 1) * V), {
          rtol: 1e-4,
          atol: 1e-5,
        });
      const changed = batchOf([[5, 6, 7]], [[1, 8, 30]], [1]);
      const c = tf.tidy(() => take(model.forward(changed, evalCtx()).logits));
      assertClose(c.subarray(0, 2 * V), a.subarray(0, 2 * V), { rtol: 1e-5, atol: 1e-6 });
      model.dispose();
    }));

  it("reorder keeps the chosen rows of the memory and state", () =>
    run(() => {
      const model = new Transformer(taskMoe, { seed: 4, namespace: uniq("reorder") });
      const b = batchOf(
        [
          [5, 6],
          [7, 8],
        ],
        [
          [1, 9],
          [2, 10],
        ],
        [0, 1],
      );
      tf.tidy(() => {
        const mem = model.encode(b, new Rng(1));
        const s1 = model.decodeStep(mem, model.initialState(), Int32Array.from([1, 2]), new Rng(1));
        const { mem: m2, state: st2 } = model.reorder(mem, s1.state, Int32Array.from([1, 1, 0]));
        const next = model.decodeStep(m2, st2, Int32Array.from([10, 10, 9]), new Rng(1)).logits.dataSync();
        const ref = model.decodeStep(mem, s1.state, Int32Array.from([9, 10]), new Rng(1)).logits.dataSync();
        assertClose(next.subarray(0, V), ref.subarray(V, 2 * V), { rtol: 1e-5, atol: 1e-6 });
        assertClose(next.subarray(2 * V, 3 * V), ref.subarray(0, V), { rtol: 1e-5, atol: 1e-6 });
      });
      model.dispose();
    }));

  it("a training step (dropout, routing losses, gradients of every parameter) leaks nothing", () =>
    run(() => {
      const model = new Transformer(taskMoe, { seed: 5, namespace: uniq("grad") });
      const b = batchOf(
        [
          [5, 6, 7],
          [9, 10],
        ],
        [
          [1, 11, 12],
          [2, 14],
        ],
        [0, 2],
      );
      const vars = [...model.variables().values()];
      assertNoLeak(() =>
        tf.tidy(() => {
          const { grads } = tf.variableGrads(() => {
            const out = model.forward(b, { training: true, rng: new Rng(9), step: 3 });
            expect(out.moe).toHaveLength(2);
            return tf.add(tf.mean(tf.square(out.logits)), tf.add(out.auxLoss, out.zLoss)) as tf.Scalar;
          }, vars);
          for (const v of vars) expect(grads[v.name]?.shape).toEqual(v.shape);
        }),
      );
      model.dispose();
    }));
});

describe("Transformer lifetime", () => {
  it("building and disposing MoE models (every router type, residual, noisy gates) leaves no tensors", () => {
    const moe = (router: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      ({ ...base, moe: { decoder: { numExperts: 4, router, ...extra } } }) as ModelConfigInput;
    for (const config of [
      taskMoe,
      moe({ type: "topk", k: 2, noise: { type: "noisy-topk" } }, { residual: true }),
      moe({ type: "task", k: 1, numTasks: 3, noise: { type: "noisy-topk" } }),
      moe({ type: "static-task", k: 2, numTasks: 3 }),
      moe({ type: "expert-choice", k: 2 }),
    ]) {
      assertNoLeak(() => new Transformer(config, { seed: 1, namespace: uniq("lifetime") }).dispose());
    }
  });
});

describe("Transformer config and input errors", () => {
  it("names what is wrong", () => {
    expect(() => new Transformer({ ...base, heads: 5 }, { seed: 1, namespace: uniq("e1") })).toThrow(
      /dModel 16 is not divisible by heads 5/,
    );
    expect(
      () =>
        new Transformer(
          { ...base, moe: { decoder: { numExperts: [4, 8], router: { type: "topk" } } } },
          { seed: 1, namespace: uniq("e2") },
        ),
    ).toThrow(/numExperts lists 2 counts but the stack has 1 MoE layers \(1\)/);
    expect(() => new Transformer({ ...base, dModl: 3 } as never, { seed: 1, namespace: uniq("e3") })).toThrow(
      /model.dModl: unknown key \(did you mean 'dModel'\?\)/,
    );
    const m = new Transformer(taskMoe, { seed: 1, namespace: uniq("e4") });
    const b = batchOf([[5]], [[1]], [0]);
    b.taskIds = {};
    expect(() => tf.tidy(() => m.forward(b, evalCtx()).logits)).toThrow(
      /reads 'target-language' task ids, one per sentence \(1\); the batch has none/,
    );
    const big = batchOf([[5, 99]], [[1]], [0]);
    expect(() => tf.tidy(() => m.forward(big, evalCtx()).logits)).toThrow(
      /token id 99 at position 1 is outside the vocabulary \[0, 40\)/,
    );
    m.dispose();
  });
});
