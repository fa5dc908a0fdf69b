import { ModelConfig, Transformer } from "@polymoe/model";
import { Rng } from "@polymoe/routers";
import { Progress, TrainConfig, type TrainConfigInput, Trainer, toModelBatch } from "@polymoe/train";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import {
  type DistillBatch,
  DistillSource,
  kdTrainLoss,
  studentConfig,
  TopKCache,
  type TopKTeacherTargets,
} from "../src/index.js";
import { KeyedSource, spreadRouters, tempDir, tinyTokenMoe } from "./fixture.js";
import { assertClose, env, onBackend, softmax, uniq } from "./helpers.js";

const quiet = new Progress({ write: () => true } as unknown as NodeJS.WriteStream, false);
const cfg: TrainConfigInput = {
  maxSteps: 8,
  evalEvery: 0,
  saveEvery: 4,
  keepLast: 0,
  seed: 3,
  optimizer: { lr: 3e-3, schedule: { type: "constant", warmupSteps: 2 } },
};

function teacherModel(namespace = uniq("teacher")): Transformer {
  const t = new Transformer(tinyTokenMoe, { seed: 5, namespace, trainable: false });
  spreadRouters(t);
  return t;
}
const student = (seed = 2) =>
  new Transformer(studentConfig(ModelConfig.parse(tinyTokenMoe)), { seed, namespace: uniq("student") });

function kdTrainer(model: Transformer, source: DistillSource, dir: string, alpha = 0.5, T = 2) {
  const config = TrainConfig.parse(cfg);
  return new Trainer<DistillBatch>({
    model,
    config,
    data: source,
    loss: kdTrainLoss({ alpha, temperature: T }).loss,
    runDir: dir,
    runConfig: {},
    progress: quiet,
    handleSignals: false,
  });
}

const identity = (topK: number, T: number) => ({
  teacher: { dir: "t", digest: "d" },
  data: "keyed-1",
  vocabSize: 24,
  topK,
  temperature: T,
  rank: 0,
  worldSize: 1,
});

describe.each(env.backends)("distillation source and trainer on %s", (backend) => {
  const run = <T>(f: () => T) => onBackend(backend, f);

  it("attaches the teacher's softened distribution (evaluation mode) on the real target tokens", () =>
    run(() => {
      const teacher = teacherModel();
      const source = new DistillSource({ data: new KeyedSource(), teacher, temperature: 2 });
      const b = source.next().value as DistillBatch;
      expect(b.teacher.kind).toBe("full");
      const probs =
        b.teacher.kind === "full" ? Float32Array.from(b.teacher.probs.dataSync()) : new Float32Array();
      const logits = tf.tidy(() =>
        Float32Array.from(
          teacher.forward(toModelBatch(b), { training: false, rng: new Rng(1) }).logits.dataSync(),
        ),
      );
      const want: number[] = [];
      for (let i = 0; i < b.tgtMask.length; i++)
        want.push(
          ...(b.tgtMask[i] ? softmax(logits.subarray(i * 24, (i + 1) * 24), 2) : new Array(24).fill(0)),
        );
      assertClose(probs, want, { rtol: 1e-4, atol: 1e-6 });
      source.dispose();
      teacher.dispose();
    }));

  it("alpha = 0 trains exactly like the plain trainer; every tensor is released", async () => {
    await run(async () => {
      const baseline = tf.memory().numTensors;
      const teacher = teacherModel();
      const a = student(7);
      const b = student(7);
      const source = new DistillSource({ data: new KeyedSource(), teacher, temperature: 1 });
      const kd = kdTrainer(a, source, tempDir(), 0, 1);
      const plain = new Trainer({
        model: b,
        config: TrainConfig.parse(cfg),
        data: new KeyedSource(),
        runDir: tempDir(),
        runConfig: {},
        progress: quiet,
        handleSignals: false,
      });
      for (let i = 0; i < 3; i++) {
        const x = await kd.trainStep();
        const y = await plain.trainStep();
        expect(x.loss).toBeCloseTo(y.loss, 5);
        expect(x.nll).toBeCloseTo(y.nll, 5);
      }
      source.dispose();
      for (const t of [kd, plain]) t.dispose();
      for (const m of [a, b, teacher]) m.dispose();
      expect(tf.memory().numTensors).toBe(baseline);
    });
  });

  it("a fully cached run never loads the teacher; top-V cached targets train like the full ones", () =>
    run(async () => {
      const baseline = tf.memory().numTensors;
      const T = 2;
      const dir = tempDir();
      const teacher = teacherModel();
      // Fill the cache for batches 0..2 with the complete distribution (K = V).
      const filler = new DistillSource({
        data: new KeyedSource(),
        teacher,
        temperature: T,
        cache: TopKCache.open(dir, identity(24, T)),
      });
      for (let i = 0; i < 3; i++) filler.next();
      filler.dispose();
      let loads = 0;
      const cached = new DistillSource({
        data: new KeyedSource(),
        teacher: () => {
          loads++;
          return teacherModel();
        },
        temperature: T,
        cache: TopKCache.open(dir, identity(24, T)),
      });
      const full = new DistillSource({ data: new KeyedSource(), teacher, temperature: T });
      const a = student(4);
      const b = student(4);
      const ta = kdTrainer(a, cached, tempDir(), 0.8, T);
      const tb = kdTrainer(b, full, tempDir(), 0.8, T);
      for (let i = 0; i < 3; i++)
        expect((await ta.trainStep()).loss).toBeCloseTo((await tb.trainStep()).loss, 4);
      expect(loads).toBe(0);
      expect(cached.stats).toMatchObject({ cacheHits: 3, teacherBatches: 0 });
      // Batch 3 is not cached: the teacher is loaded then.
      await ta.trainStep();
      expect(loads).toBe(1);
      expect(cached.teacherLoaded).toBe(true);
      for (const s of [cached, full]) s.dispose();
      for (const t of [ta, tb]) t.dispose();
      for (const m of [a, b, teacher]) m.dispose();
      expect(tf.memory().numTensors).toBe(baseline); // the lazily loaded teacher was released too
    }));

  it("a resumed cached-logit run reads the records the first run wrote, and ends in the same weights", async () => {
    await run(async () => {
      const T = 2;
      const cacheDir = tempDir();
      const runDir = tempDir();
      const seen = new Map<number, TopKTeacherTargets>();
      const spy = (s: DistillSource) => {
        const next = s.next.bind(s);
        s.next = () => {
          const r = next();
          const t = (r.value as DistillBatch).teacher as TopKTeacherTargets;
          seen.set((r.value as DistillBatch).step, {
            ...t,
            indices: Int32Array.from(t.indices),
            logProbs: Float32Array.from(t.logProbs),
          });
          return r;
        };
        return s;
      };
      // Run A: 6 steps computing and caching top-4 targets, checkpoint at step 4, then it stops
      // (the cache is flushed on stop; the checkpoint stays at step 4).
      const teacher = teacherModel();
      const a = student(9);
      const sa = spy(
        new DistillSource({
          data: new KeyedSource(),
          teacher,
          temperature: T,
          cache: TopKCache.open(cacheDir, identity(4, T)),
        }),
      );
      const ta = kdTrainer(a, sa, runDir, 0.5, T);
      for (let i = 0; i < 6; i++) {
        await ta.trainStep();
        if (ta.step === 4) await ta.save();
      }
      sa.dispose();
      const weightsA = new Map([...a.variables()].map(([k, v]) => [k, Float32Array.from(v.dataSync())]));
      const fromA = new Map(seen);
      seen.clear();
      // Run B: a new process (other student init), resumed from checkpoint_last (step 4).
      let loads = 0;
      const b = student(99);
      const sb = spy(
        new DistillSource({
          data: new KeyedSource(),
          teacher: () => {
            loads++;
            return teacherModel();
          },
          temperature: T,
          cache: TopKCache.open(cacheDir, identity(4, T)),
        }),
      );
      const tb = kdTrainer(b, sb, runDir, 0.5, T);
      expect(tb.resume()).toMatch(/checkpoint_0_4$/);
      await tb.trainStep();
      await tb.trainStep();
      expect([...seen.keys()]).toEqual([4, 5]);
      for (const key of [4, 5]) {
        const x = fromA.get(key) as TopKTeacherTargets;
        const y = seen.get(key) as TopKTeacherTargets;
        expect(Array.from(y.indices)).toEqual(Array.from(x.indices));
        expect(Array.from(y.logProbs)).toEqual(Array.from(x.logProbs));
      }
      expect(loads).toBe(0);
      for (const [k, v] of b.variables())
        expect(Array.from(v.dataSync()), k).toEqual(Array.from(weightsA.get(k)!));
      sb.dispose();
      for (const t of [ta, tb]) t.dispose();
      for (const m of [a, b, teacher]) m.dispose();
    });
  });
});

describe("distillation source: bad input", () => {
  it("refuses batches without a stream position and a cache of another temperature", () => {
    const teacher = teacherModel();
    const noStep = new KeyedSource();
    const make = noStep.make.bind(noStep);
    noStep.make = (p: number) => ({ ...make(p), step: undefined as never });
    const s = new DistillSource({ data: noStep, teacher, temperature: 1 });
    expect(() => s.next()).toThrow(/batches that carry their stream position \('step'/);
    expect(
      () =>
        new DistillSource({
          data: new KeyedSource(),
          teacher,
          temperature: 1,
          cache: TopKCache.open(tempDir(), identity(4, 2)),
        }),
    ).toThrow(/holds targets at temperature 2, this run uses 1/);
    expect(() => new DistillSource({ data: new KeyedSource(), teacher, temperature: -1 })).toThrow(
      /temperature must be a finite number > 0, got -1/,
    );
    expect(() => kdTrainLoss({ alpha: 1.2, temperature: 1 })).toThrow(/alpha must be in \[0, 1\]/);
    teacher.dispose();
  });
});
