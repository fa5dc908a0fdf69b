import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Transformer } from "@polymoe/model";
import { Rng } from "@polymoe/routers";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import {
  aggregateExperts,
  evaluateLoss,
  initExpertsFromDense,
  type LossInput,
  labelSmoothedCrossEntropy,
  lastCheckpoint,
  SafetensorsFile,
  TrainConfig,
  type TrainConfigInput,
  Trainer,
  toModelBatch,
} from "../src/index.js";
import { env, onBackend, quiet, SyntheticSource, tinyDense, tinyTaskMoe, uniq } from "./helpers.js";

const runDir = () => mkdtempSync(path.join(tmpdir(), "polymoe-train-"));

function trainer(
  model: Transformer,
  cfg: TrainConfigInput,
  dir: string,
  data = new SyntheticSource(),
  extra = {},
) {
  const config = TrainConfig.parse(cfg);
  return new Trainer({
    model,
    config,
    data,
    runDir: dir,
    runConfig: { model: model.config, train: config },
    progress: quiet,
    handleSignals: false,
    dev: (m, rng) => evaluateLoss(m, data.devBatches(), config.labelSmoothing, rng),
    ...extra,
  });
}

const fastOpt = {
  lr: 3e-3,
  schedule: { type: "constant" as const, warmupSteps: 5 },
};

describe(`Trainer learning (on ${env.backends.at(-1)})`, () => {
  const run = <T>(f: () => Promise<T> | T) => onBackend(env.backends.at(-1) as string, f as () => T);

  it("a task-MoE model learns the synthetic tasks: dev loss falls, metrics and checkpoints are written", async () => {
    const dir = runDir();
    const model = new Transformer(
      { ...tinyTaskMoe, dModel: 32, heads: 4, dFF: 64 },
      { seed: 1, namespace: uniq("learn") },
    );
    const t = trainer(
      model,
      { maxSteps: 150, evalEvery: 75, saveEvery: 75, logEvery: 25, optimizer: { ...fastOpt, lr: 5e-3 } },
      dir,
    );
    const before = evaluateLoss(model, new SyntheticSource().devBatches(), 0.1, new Rng(1)).loss;
    const summary = await run(() => t.run());
    expect(summary.steps).toBe(150);
    console.log(`synthetic tasks: dev loss ${before.toFixed(3)} -> ${summary.bestDevLoss?.toFixed(3)}`);
    expect(summary.bestDevLoss).toBeLessThan(before * 0.75);
    const lines = readFileSync(path.join(dir, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const train = lines.filter((l) => l.kind === "train");
    expect(train).toHaveLength(6);
    const dec = train[0].moe.find((m: { layer: string }) => m.layer === "decoder.layers.1");
    expect(dec.usagePerTask).toHaveLength(3 * 4); // 3 tasks x 4 experts
    expect(lines.filter((l) => l.kind === "dev")).toHaveLength(2);
    expect(lastCheckpoint(dir)).toMatch(/checkpoint_0_150$/);
    expect(existsSync(path.join(dir, "checkpoints", "checkpoint_best"))).toBe(true);
    t.dispose();
    model.dispose();
  });
});

describe.each(env.backends)("Trainer on %s", (backend) => {
  const run = <T>(f: () => Promise<T> | T) => onBackend(backend, f as () => T);

  it("resumes exactly: crash after step 7, resume from the step-5 checkpoint, step 10 matches bitwise", async () => {
    const cfg: TrainConfigInput = { maxSteps: 10, saveEvery: 5, evalEvery: 0, optimizer: fastOpt, seed: 3 };
    // uninterrupted
    const dirA = runDir();
    const a = new Transformer(tinyTaskMoe, { seed: 2, namespace: uniq("resumeA") });
    await run(() => trainer(a, cfg, dirA).run());
    // interrupted: steps 1..7 with the checkpoint at 5, then the process "dies"
    const dirB = runDir();
    const b1 = new Transformer(tinyTaskMoe, { seed: 2, namespace: uniq("resumeB1") });
    const tb1 = trainer(b1, cfg, dirB);
    await run(async () => {
      for (let i = 0; i < 7; i++) {
        await tb1.trainStep();
        if (tb1.step === 5) await tb1.save();
      }
    });
    // a new process: a freshly initialised model (other seed), resumed from checkpoint_last
    const b2 = new Transformer(tinyTaskMoe, { seed: 99, namespace: uniq("resumeB2") });
    const summary = await run(() => trainer(b2, cfg, dirB).run());
    expect(summary.resumedFrom).toMatch(/checkpoint_0_5$/);
    for (const [k, v] of a.variables()) {
      expect(Array.from(b2.variables().get(k)!.dataSync()), k).toEqual(Array.from(v.dataSync()));
    }
    for (const m of [a, b1, b2]) m.dispose();
  });

  it("reports where a step's time went: phases add up to the total, the forward split by model part", () =>
    run(async () => {
      const model = new Transformer(tinyTaskMoe, { seed: 4, namespace: uniq("timings") });
      const t = trainer(model, { maxSteps: 10, accumulate: 2, optimizer: fastOpt }, runDir());
      const { timings } = await t.trainStep();
      const phases = timings.data + timings.forward + timings.backward + timings.optimizer;
      for (const v of [timings.data, timings.forward, timings.backward, timings.optimizer]) {
        expect(v).toBeGreaterThanOrEqual(0);
      }
      expect(phases).toBeLessThanOrEqual(timings.total + 1e-6);
      expect(phases).toBeGreaterThan(0.8 * timings.total);
      // tinyTaskMoe has attention, dense FFNs and MoE layers; parts of the forward sum below it.
      const s = timings.sections;
      expect(Object.keys(s).sort()).toEqual(["attention", "embed", "ffn", "moe", "output"]);
      const parts = Object.values(s).reduce((a, b) => a + b, 0);
      expect(parts).toBeLessThanOrEqual(timings.forward + 1e-6);
      expect(s.attention).toBeGreaterThan(0);
      expect(s.moe).toBeGreaterThan(0);
      expect(timings.comm).toBeUndefined(); // one process: no communication
      t.dispose();
      model.dispose();
    }));

  it("a custom loss replaces the label-smoothed cross-entropy; router losses are still added", () =>
    run(async () => {
      const cfg: TrainConfigInput = { maxSteps: 3, evalEvery: 0, optimizer: fastOpt, seed: 5 };
      const results: { r: Awaited<ReturnType<Trainer["trainStep"]>>[]; seen: number[] }[] = [];
      for (const scale of [1, 2]) {
        const model = new Transformer(tinyTaskMoe, { seed: 8, namespace: uniq(`customLoss${scale}`) });
        const seen: number[] = [];
        const t = trainer(model, cfg, runDir(), new SyntheticSource(), {
          loss: ({ output, batch, labelSmoothing, step }: LossInput) => {
            seen.push(step);
            const l = labelSmoothedCrossEntropy(
              output.logits,
              batch.tgtOutIds,
              batch.tgtMask,
              labelSmoothing,
            );
            return { ...l, loss: tf.mul(l.loss, scale) as tf.Scalar };
          },
        });
        const r = [await t.trainStep(), await t.trainStep()];
        t.dispose();
        model.dispose();
        results.push({ r, seen });
      }
      const plainModel = new Transformer(tinyTaskMoe, { seed: 8, namespace: uniq("customLossPlain") });
      const plain = trainer(plainModel, cfg, runDir());
      const p = await plain.trainStep();
      plain.dispose();
      plainModel.dispose();
      const [one, two] = results as [(typeof results)[number], (typeof results)[number]];
      expect(one.seen).toEqual([0, 1]);
      // The identity loss is the default loss: same first step, bit for bit.
      expect(one.r[0]!.loss).toBe(p.loss);
      expect(one.r[0]!.nll).toBe(p.nll);
      // Twice the token loss: the reported loss is 2 * token loss + router losses, nll unchanged.
      const router = (r: (typeof one.r)[number]) => 0.01 * r.aux + 0.001 * r.z;
      expect(two.r[0]!.nll).toBe(one.r[0]!.nll);
      expect(two.r[0]!.loss - router(two.r[0]!)).toBeCloseTo(2 * (one.r[0]!.loss - router(one.r[0]!)), 4);
    }));

  it("skips non-finite steps and stops with a clear message after maxBadSteps in a row", () =>
    run(async () => {
      const model = new Transformer(tinyDense, { seed: 4, namespace: uniq("guard") });
      const t = trainer(model, { maxSteps: 10, maxBadSteps: 3, optimizer: fastOpt }, runDir());
      await t.trainStep();
      const w = model.variables().get("decoder.layers.0.ffn.w1.w")!;
      tf.tidy(() => w.assign(tf.fill(w.shape, Number.NaN)));
      const other = model.variables().get("embed.tokens")!;
      const before = Float32Array.from(other.dataSync());
      expect((await t.trainStep()).skipped).toBe(true);
      expect((await t.trainStep()).skipped).toBe(true);
      expect(Array.from(other.dataSync())).toEqual(Array.from(before)); // nothing was updated
      expect(t.skippedSteps).toBe(2);
      await expect(t.trainStep()).rejects.toThrow(
        /3 consecutive steps had a non-finite loss or gradient .* Lower train.optimizer.lr/,
      );
      model.dispose();
    }));

  it("experts from dense: every expert starts as the dense FFN, so the MoE model computes what the dense one does", async () => {
    const dir = runDir();
    const dense = new Transformer(tinyDense, { seed: 5, namespace: uniq("dense") });
    await run(() => trainer(dense, { maxSteps: 5, evalEvery: 0, optimizer: fastOpt }, dir).run());
    const moeCfg = {
      ...tinyDense,
      moe: {
        decoder: {
          numExperts: 4,
          layers: "all" as const,
          router: { type: "topk" as const, k: 2, capacityFactor: 0, evalCapacityFactor: 0 },
        },
      },
    };
    const moe = new Transformer(moeCfg, { seed: 6, namespace: uniq("fromDense") });
    const r = initExpertsFromDense(moe, lastCheckpoint(dir)!);
    expect(r.moeLayers).toBe(2);
    const batch = toModelBatch(new SyntheticSource().devBatches(1)[0]!);
    run(() => {
      const want = tf.tidy(() =>
        Float32Array.from(dense.forward(batch, { training: false, rng: new Rng(1) }).logits.dataSync()),
      );
      const got = tf.tidy(() =>
        Float32Array.from(moe.forward(batch, { training: false, rng: new Rng(1) }).logits.dataSync()),
      );
      // Real target positions only: MoE layers do not route padding (its FFN output is 0 there).
      let worst = 0;
      got.forEach((v, i) => {
        if (batch.tgtMask[Math.floor(i / tinyDense.vocabSize)])
          worst = Math.max(worst, Math.abs(v - want[i]!));
      });
      expect(worst).toBeLessThan(1e-4);
    });
    dense.dispose();
    moe.dispose();
  });

  it("aggregates experts from several checkpoints and refuses a count that does not add up", async () => {
    const dirs = [runDir(), runDir()];
    const sources = [7, 8].map((s) => new Transformer(tinyDense, { seed: s, namespace: uniq("src") }));
    await run(async () => {
      for (const [i, m] of sources.entries())
        await trainer(m, { maxSteps: 2, evalEvery: 0, optimizer: fastOpt }, dirs[i]!).run();
    });
    const cfg = (n: number) => ({
      ...tinyDense,
      moe: { decoder: { numExperts: n, router: { type: "topk" as const, k: 1 } } },
    });
    const agg = new Transformer(cfg(2), { seed: 9, namespace: uniq("agg") });
    aggregateExperts(
      agg,
      dirs.map((d) => lastCheckpoint(d)!),
      "average",
    );
    const w1 = agg.variables().get("decoder.layers.1.ffn.experts.w1")!.dataSync();
    const per = w1.length / 2;
    sources.forEach((s, e) => {
      expect(Array.from(w1.subarray(e * per, (e + 1) * per))).toEqual(
        Array.from(s.variables().get("decoder.layers.1.ffn.w1.w")!.dataSync()),
      );
    });
    const emb = agg.variables().get("embed.tokens")!.dataSync();
    const e0 = sources[0]!.variables().get("embed.tokens")!.dataSync();
    const e1 = sources[1]!.variables().get("embed.tokens")!.dataSync();
    expect(Math.abs(emb[5]! - (e0[5]! + e1[5]!) / 2)).toBeLessThan(1e-6);
    const three = new Transformer(cfg(3), { seed: 9, namespace: uniq("agg3") });
    expect(() =>
      aggregateExperts(
        three,
        dirs.map((d) => lastCheckpoint(d)!),
      ),
    ).toThrow(/decoder.layers.1: the sources hold 2 experts in total .* the layer has 3/);
    for (const m of [...sources, agg, three]) m.dispose();
  });

  it("refuses to resume on an architecture mismatch, naming each difference", async () => {
    const dir = runDir();
    const m = new Transformer(tinyTaskMoe, { seed: 10, namespace: uniq("arch") });
    await run(() => trainer(m, { maxSteps: 1, evalEvery: 0, optimizer: fastOpt }, dir).run());
    const other = new Transformer(
      {
        ...tinyTaskMoe,
        dFF: 48,
        moe: { ...tinyTaskMoe.moe, decoder: { ...tinyTaskMoe.moe!.decoder!, numExperts: 8 } },
      },
      { seed: 10, namespace: uniq("arch2") },
    );
    await expect(run(() => trainer(other, { maxSteps: 2, optimizer: fastOpt }, dir).run())).rejects.toThrow(
      /model architecture differs:[\s\S]*model.dFF: checkpoint 32, this run 48[\s\S]*model.moe.decoder.numExperts: checkpoint 4, this run 8[\s\S]*checkpoint has 4 experts, this run 8/,
    );
    m.dispose();
    other.dispose();
  });

  it("a save interrupted mid-way leaves the previous checkpoint loadable; the next save clears the debris", async () => {
    const dir = runDir();
    const m = new Transformer(tinyDense, { seed: 11, namespace: uniq("crash") });
    const t = trainer(m, { maxSteps: 4, evalEvery: 0, saveEvery: 2, optimizer: fastOpt }, dir);
    await run(async () => {
      await t.trainStep();
      await t.trainStep();
      await t.save();
    });
    // What a process killed while writing checkpoint_0_3 leaves behind:
    const debris = path.join(dir, "checkpoints", ".tmp-checkpoint_0_3-999999");
    mkdirSync(debris);
    writeFileSync(path.join(debris, "model.safetensors.tmp-999999-x"), Buffer.alloc(100));
    expect(lastCheckpoint(dir)).toMatch(/checkpoint_0_2$/);
    const fresh = new Transformer(tinyDense, { seed: 12, namespace: uniq("crash2") });
    const t2 = trainer(fresh, { maxSteps: 4, evalEvery: 0, saveEvery: 2, optimizer: fastOpt }, dir);
    const summary = await run(() => t2.run());
    expect(summary.resumedFrom).toMatch(/checkpoint_0_2$/);
    expect(existsSync(debris)).toBe(false);
    const f = SafetensorsFile.open(path.join(lastCheckpoint(dir)!, "model.safetensors"));
    expect(f.names()).toContain("embed.tokens");
    f.close();
    m.dispose();
    fresh.dispose();
  });
});
