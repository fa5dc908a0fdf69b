import { readdirSync } from "node:fs";
import { Transformer } from "@polymoe/model";
import { OffloadError, PagedExperts } from "@polymoe/offload";
import { memory } from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import type { TrainConfigInput } from "../src/index.js";
import { env, onBackend, tenSteps, testTrainer, tinyTaskMoe, tmp, uniq } from "./helpers.js";

function trainer(
  model: Transformer,
  cfg: TrainConfigInput,
  runDir = tmp("polymoe-paged-run-"),
  fresh = true,
) {
  return testTrainer(model, cfg, runDir, { fresh });
}

/** A model whose experts live in a pager caching `cacheBytes` of parameters and moments. */
function pagedModel(
  tag: string,
  cacheBytes: number,
  init: "eager" | "first-use" = "eager",
  asyncWriteBack = false,
) {
  const dir = tmp("polymoe-paged-store-");
  const pager = new PagedExperts({ dir, cacheBytes, namespace: uniq(`${tag}.pager`), init, asyncWriteBack });
  const model = new Transformer(tinyPaged, { seed: 3, namespace: uniq(tag), pager });
  return { model, pager, dir };
}

/** tinyTaskMoe with a second encoder layer: MoE layers with token routing (encoder) and task routing (decoder). */
const tinyPaged = { ...tinyTaskMoe, encoderLayers: 2 };

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
  return d;
};

// tinyTaskMoe: dModel 16, expert dFF 32 (with biases): 16*32*2 + 32 + 16 = 1072 floats per expert.
const EXPERT_BYTES = 1072 * 4;

describe.each(env.backends)("paged experts on %s", (backend) => {
  it("10 steps with experts paged through disk give the same losses and parameters as resident experts", () =>
    onBackend(backend, async () => {
      // Reference: resident experts, offloaded optimizer updating the experts the batch routed to
      // (lazy Adam), which is what paging does by construction. Clipping off: the cpu backend sums
      // the resident gradient norm in float32, the pager's part in float64, and a clip factor 1e-7
      // apart is enough for Adam to amplify the rounding noise that is the whole gradient of some
      // parameters (attention key biases) to lr-sized differences (the gradient norms are compared below).
      const refModel = new Transformer(tinyPaged, { seed: 3, namespace: uniq("ref") });
      const noClip = { ...tenSteps, optimizer: { ...tenSteps.optimizer, clipNorm: 0 } };
      const ref = trainer(refModel, {
        ...noClip,
        offload: { dir: tmp("polymoe-paged-ref-"), hostMemoryGB: 4, experts: "routed", enforceBudget: false },
      });
      // Paged: a cache of 3 experts for 8 experts' parameters and moments, so every step pages through disk.
      // Encoder layer 1 routes tokens (top-2), decoder layer 1 routes by task.
      const p = pagedModel("paged", 3 * 3 * EXPERT_BYTES);
      const paged = trainer(p.model, {
        ...noClip,
        offload: {
          dir: tmp("polymoe-paged-opt-"),
          hostMemoryGB: 4,
          experts: "paged",
          expertCacheGB: 0.001,
          enforceBudget: false,
        },
      });
      expect(paged.pager).toBe(p.pager);
      expect(p.model.numParameters()).toBe(refModel.numParameters());
      expect([...p.model.variables().keys()].some((k) => k.includes(".experts."))).toBe(false);
      expect(p.pager.layerNames()).toEqual(["encoder.layers.1.ffn.experts", "decoder.layers.1.ffn.experts"]);
      let read = 0;
      let written = 0;
      for (let s = 0; s < 10; s++) {
        const a = await ref.trainStep();
        const b = await paged.trainStep();
        expect(Math.abs(a.loss - b.loss), `loss at step ${s + 1}`).toBeLessThanOrEqual(1e-5);
        expect(Math.abs(a.gradNorm - b.gradNorm) / a.gradNorm).toBeLessThanOrEqual(1e-5);
        read += b.memory.diskBytesRead;
        written += b.memory.diskBytesWritten;
      }
      // The cache is smaller than the experts: they went through disk both ways.
      expect(read).toBeGreaterThan(0);
      expect(written).toBeGreaterThan(0);
      expect(readdirSync(p.dir).filter((f) => f.endsWith(".f32")).length).toBeGreaterThan(0);
      const want = refModel.variables();
      for (const [name, v] of p.model.variables()) {
        expect(
          maxDiff(v.dataSync() as Float32Array, want.get(name)!.dataSync() as Float32Array),
          name,
        ).toBeLessThanOrEqual(1e-5);
      }
      // Every expert of every MoE layer: parameters as the resident ones, by global id.
      const refState = (
        ref.optimizer as { state(): { tensors: Map<string, { values: Float32Array }> } }
      ).state();
      let moved = 0;
      for (const layer of p.pager.layerNames()) {
        for (const part of ["w1", "b1", "w2", "b2"] as const) {
          const full = want.get(`${layer}.${part}`)!.dataSync() as Float32Array;
          const per = full.length / 4;
          for (let e = 0; e < 4; e++) {
            const got = p.pager.expert(layer, e);
            const slice = full.subarray(e * per, (e + 1) * per);
            expect(maxDiff(got.params[part], slice), `${layer}.${part}[${e}]`).toBeLessThanOrEqual(1e-5);
            const m = refState.tensors.get(`${layer}.${part}.m`)?.values.subarray(e * per, (e + 1) * per);
            if (got.m && m) {
              expect(maxDiff(got.m[part], m), `${layer}.${part}.m[${e}]`).toBeLessThanOrEqual(1e-5);
              moved++;
            }
          }
        }
      }
      expect(moved).toBeGreaterThan(0);
      ref.dispose();
      paged.dispose();
      p.pager.dispose();
    }));

  it("a checkpoint holds the experts as of its step; resuming from it continues exactly", () =>
    onBackend(backend, async () => {
      const cfg = {
        ...tenSteps,
        offload: {
          dir: tmp("polymoe-paged-ck-"),
          hostMemoryGB: 4,
          experts: "paged" as const,
          expertCacheGB: 0.001,
          enforceBudget: false,
        },
      };
      const runDir = tmp("polymoe-paged-ck-run-");
      const a = pagedModel("ck-a", 3 * 3 * EXPERT_BYTES);
      const ta = trainer(a.model, cfg, runDir);
      for (let s = 0; s < 4; s++) await ta.trainStep();
      const saved = await ta.save();
      const after: number[] = [];
      // The store keeps changing after the save; the checkpoint must not.
      for (let s = 0; s < 3; s++) after.push((await ta.trainStep()).loss);
      const layer = a.pager.layerNames()[0] as string;
      const expertA = a.pager.expert(layer, 1).params.w1;
      // A fresh process's view: new pager (its own directory), new model, resumed from checkpoint_last.
      const b = pagedModel("ck-b", 3 * 3 * EXPERT_BYTES);
      const tb = trainer(
        b.model,
        { ...cfg, offload: { ...cfg.offload, dir: tmp("polymoe-paged-ck2-") } },
        runDir,
        false,
      );
      expect(tb.resume()).toBe(saved);
      expect(tb.step).toBe(4);
      expect(b.pager.step).toBe(4);
      for (let s = 0; s < 3; s++) {
        const r = await tb.trainStep();
        expect(
          Math.abs(r.loss - (after[s] as number)),
          `loss after resume, step ${s + 5}`,
        ).toBeLessThanOrEqual(1e-6);
      }
      expect(maxDiff(b.pager.expert(layer, 1).params.w1, expertA)).toBeLessThanOrEqual(1e-6);
      // The checkpoint stores experts by global id like resident ones: a resident model loads it.
      const resident = new Transformer(tinyPaged, { seed: 3, namespace: uniq("ck-res") });
      const { loadCheckpoint } = await import("../src/checkpoint.js");
      loadCheckpoint(saved, resident, null);
      expect(resident.variables().get(`${layer}.w1`)!.shape[0]).toBe(4);
      ta.dispose();
      tb.dispose();
      a.pager.dispose();
      b.pager.dispose();
      resident.dispose();
    }));

  it("gradient accumulation over micro-batches (shared or separate fetches) matches resident experts", () =>
    onBackend(backend, async () => {
      const cfg = { ...tenSteps, accumulate: 2, optimizer: { ...tenSteps.optimizer, clipNorm: 0 } };
      const refModel = new Transformer(tinyPaged, { seed: 3, namespace: uniq("acc-ref") });
      const ref = trainer(refModel, {
        ...cfg,
        offload: { dir: tmp("polymoe-paged-acc-"), hostMemoryGB: 4, experts: "routed", enforceBudget: false },
      });
      const p = pagedModel("acc", 1 << 20);
      const paged = trainer(p.model, {
        ...cfg,
        offload: { dir: tmp("polymoe-paged-acc2-"), hostMemoryGB: 4, experts: "paged", enforceBudget: false },
      });
      for (let s = 0; s < 4; s++) {
        const a = await ref.trainStep();
        const b = await paged.trainStep();
        expect(Math.abs(a.loss - b.loss), `loss at step ${s + 1}`).toBeLessThanOrEqual(1e-5);
      }
      const want = refModel.variables();
      for (const layer of p.pager.layerNames()) {
        const full = want.get(`${layer}.w2`)!.dataSync() as Float32Array;
        const per = full.length / 4;
        for (let e = 0; e < 4; e++) {
          const got = p.pager.expert(layer, e).params.w2;
          expect(
            maxDiff(got, full.subarray(e * per, (e + 1) * per)),
            `${layer}.w2[${e}]`,
          ).toBeLessThanOrEqual(1e-5);
        }
      }
      ref.dispose();
      paged.dispose();
      p.pager.dispose();
    }));

  it("with background write-back (experts evicted every step) the run is the same as with synchronous writes", () =>
    onBackend(backend, async () => {
      const cfg = {
        ...tenSteps,
        offload: {
          dir: tmp("polymoe-paged-wb-"),
          hostMemoryGB: 4,
          experts: "paged" as const,
          enforceBudget: false,
        },
      };
      const sync = pagedModel("wb-sync", 3 * 3 * EXPERT_BYTES);
      const bg = pagedModel("wb-async", 3 * 3 * EXPERT_BYTES, "eager", true);
      const ts = trainer(sync.model, cfg);
      const tb = trainer(bg.model, { ...cfg, offload: { ...cfg.offload, dir: tmp("polymoe-paged-wb2-") } });
      let written = 0;
      for (let s = 0; s < 6; s++) {
        const a = await ts.trainStep();
        const b = await tb.trainStep();
        expect(b.loss).toBe(a.loss);
        written += b.memory.diskBytesWritten;
      }
      expect(written).toBeGreaterThan(0);
      for (const layer of bg.pager.layerNames()) {
        for (let e = 0; e < 4; e++) {
          const x = bg.pager.expert(layer, e);
          const y = sync.pager.expert(layer, e);
          expect(maxDiff(x.params.w1, y.params.w1)).toBe(0);
          if (y.m) expect(maxDiff(x.m!.w2, y.m.w2)).toBe(0);
        }
      }
      ts.dispose();
      tb.dispose();
      sync.pager.dispose();
      bg.pager.dispose();
    }));

  it("first-use initialisation draws the same experts as eager, only when routed", () =>
    onBackend(backend, async () => {
      const cfg = {
        ...tenSteps,
        offload: {
          dir: tmp("polymoe-paged-fu-"),
          hostMemoryGB: 4,
          experts: "paged" as const,
          enforceBudget: false,
        },
      };
      const eager = pagedModel("fu-eager", 1 << 20);
      const lazy = pagedModel("fu-lazy", 1 << 20, "first-use");
      expect(lazy.pager.store.stats().totalBytes).toBe(0);
      expect(eager.pager.store.stats().totalBytes).toBe(8 * EXPERT_BYTES);
      const te = trainer(eager.model, cfg);
      const tl = trainer(lazy.model, { ...cfg, offload: { ...cfg.offload, dir: tmp("polymoe-paged-fu2-") } });
      for (let s = 0; s < 3; s++) {
        const a = await te.trainStep();
        const b = await tl.trainStep();
        expect(b.loss).toBe(a.loss);
      }
      const layer = lazy.pager.layerNames()[1] as string;
      for (let e = 0; e < 4; e++) {
        expect(maxDiff(lazy.pager.expert(layer, e).params.w1, eager.pager.expert(layer, e).params.w1)).toBe(
          0,
        );
      }
      te.dispose();
      tl.dispose();
      eager.pager.dispose();
      lazy.pager.dispose();
    }));

  it("leaves no tensors behind: a step fetches, updates and releases its experts", () =>
    onBackend(backend, async () => {
      const p = pagedModel("leak", 1 << 20);
      const t = trainer(p.model, {
        ...tenSteps,
        offload: { dir: tmp("polymoe-paged-leak-"), hostMemoryGB: 4, experts: "paged", enforceBudget: false },
      });
      await t.trainStep();
      const before = memory().numTensors;
      for (let s = 0; s < 3; s++) {
        const r = await t.trainStep();
        expect(p.pager.lastStep()!.expertsUpdated).toBeGreaterThan(0);
        expect(r.skipped).toBe(false);
      }
      expect(memory().numTensors).toBe(before);
      t.dispose();
      p.pager.dispose();
    }));
});

describe("paged experts: bad input and the budget", () => {
  it("a cache smaller than one expert is a clear error naming the setting to raise", () => {
    const pager = new PagedExperts({ dir: tmp("polymoe-paged-tiny-"), cacheBytes: EXPERT_BYTES / 2 });
    let err: unknown;
    try {
      new Transformer(tinyPaged, { seed: 3, namespace: uniq("tiny"), pager });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OffloadError);
    expect((err as OffloadError).code).toBe("BUDGET_EXCEEDED");
    expect((err as Error).message).toMatch(
      /the offload store needs .* to hold '(en|de)coder.layers.1.ffn.experts\|0\|p' .* over its budget of .*; raise offload.expertCacheGB/,
    );
    pager.dispose();
  });

  it("a process over offload.hostMemoryGB stops with BUDGET_EXCEEDED after the step, not an OOM kill", async () => {
    const p = pagedModel("rss", 1 << 20);
    // The parts the optimizer can count fit (tiny model), but this process's RSS (node, vitest, tfjs) is far above 60 MB.
    const t = trainer(p.model, {
      ...tenSteps,
      offload: {
        dir: tmp("polymoe-paged-rss-"),
        hostMemoryGB: 0.06,
        reserveGB: 0.01,
        experts: "paged",
        expertCacheGB: 0.01,
      },
    });
    await expect(t.trainStep()).rejects.toThrow(
      /peak RSS .* went over offload.hostMemoryGB 0.06 after update 1 .* raise offload.hostMemoryGB to/,
    );
    t.dispose();
    p.pager.dispose();
  });

  it("paged config without a pager, and a pager without the paged config, are refused with the fix", () => {
    const plain = new Transformer(tinyTaskMoe, { seed: 3, namespace: uniq("nopager") });
    expect(() =>
      trainer(plain, {
        ...tenSteps,
        offload: { dir: tmp("polymoe-paged-x-"), hostMemoryGB: 4, experts: "paged" },
      }),
    ).toThrow(/train.offload.experts is 'paged' but the model was built without a pager; build it with/);
    plain.dispose();
    const p = pagedModel("nocfg", 1 << 20);
    expect(() => trainer(p.model, tenSteps)).toThrow(
      /the model's experts are paged .* but train.offload.experts is 'unset'; set train.offload with experts: "paged"/,
    );
    p.pager.dispose();
  });
});
