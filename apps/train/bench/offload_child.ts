// One measurement of pnpm bench:offload (a fresh process, so its peak RSS is
// its own): trains a taskmoe-family model with `experts` experts per MoE layer
// for a few steps on synthetic batches — without offload, with offloaded
// optimizer state (--offload), or with paged experts (--paged: expert
// parameters, gradients and moments in the store, only routed experts
// fetched) — and prints one JSON line: parameters, peak RSS, tokens/s, disk
// traffic per step, or the error that stopped it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

import { useBackend } from "@polymoe/kernels";
import { Transformer } from "@polymoe/model";
import { OffloadConfig, PagedExperts, pagedDir } from "@polymoe/offload";
import { type BatchSource, Progress, type TrainBatch, TrainConfig, Trainer } from "@polymoe/train";

const { values: a } = parseArgs({
  options: {
    experts: { type: "string" },
    offload: { type: "boolean", default: false },
    paged: { type: "boolean", default: false },
    "cache-gb": { type: "string", default: "0.25" },
    encoder: { type: "string", default: "task" },
    "expert-init": { type: "string", default: "eager" },
    "write-back": { type: "string", default: "sync" },
    "budget-gb": { type: "string" },
    "reserve-gb": { type: "string", default: "0.5" },
    steps: { type: "string", default: "2" },
    dir: { type: "string" },
  },
});
const E = Number(a.experts);
const budgetGB = Number(a["budget-gb"]);
const steps = Number(a.steps);
const paged = a.paged;
const offload = a.offload || paged;
if (a.encoder !== "task" && a.encoder !== "token") throw new Error(`--encoder task|token, got ${a.encoder}`);

await useBackend("native");

const VOCAB = 8000;
const TASKS = 8;
const runDir = mkdtempSync(path.join(tmpdir(), "polymoe-bench-offload-run-"));
const storeDir = a.dir ?? mkdtempSync(path.join(tmpdir(), "polymoe-bench-offload-store-"));
const offloadConfig = {
  dir: storeDir,
  hostMemoryGB: budgetGB,
  reserveGB: Number(a["reserve-gb"]),
  enforceBudget: true,
  ...(paged
    ? {
        experts: "paged" as const,
        expertCacheGB: Number(a["cache-gb"]),
        expertInit: a["expert-init"] === "first-use" ? ("first-use" as const) : ("eager" as const),
      }
    : {}),
};
/**
 * The taskmoe family: MoE on every other layer, top-2 task routing by target
 * language over 8 tasks in the decoder and (default, --encoder task) in the
 * encoder too — a batch touches at most 16 experts per layer — or top-2
 * token routing in the encoder (--encoder token, taskmoe-base's layout), at
 * a width that fits the bench's budget.
 */
const encoderRouter =
  a.encoder === "token"
    ? { router: { type: "topk" as const, k: 2, capacityFactor: 1.25 } }
    : { taskKey: "target-language" as const, router: { type: "task" as const, k: 2, numTasks: TASKS } };
const t0 = performance.now();
const resolved = OffloadConfig.parse(offloadConfig);
const pager = paged
  ? new PagedExperts({
      dir: pagedDir(resolved.dir),
      cacheBytes: resolved.expertCacheGB * 2 ** 30,
      fsync: resolved.fsync,
      init: resolved.expertInit,
      asyncWriteBack: a["write-back"] === "async",
    })
  : undefined;
const model = new Transformer(
  {
    vocabSize: VOCAB,
    dModel: 256,
    heads: 4,
    dFF: 1024,
    encoderLayers: 2,
    decoderLayers: 2,
    maxLength: 64,
    dropout: 0.1,
    moe: {
      encoder: { numExperts: E, dFF: 1024, ...encoderRouter },
      decoder: {
        numExperts: E,
        dFF: 1024,
        taskKey: "target-language",
        router: { type: "task", k: 2, numTasks: TASKS },
      },
    },
  },
  { seed: 1, ...(pager ? { pager } : {}) },
);
const initMs = performance.now() - t0;

/** Endless synthetic batches: 8 sentences of 16 tokens, all 8 target languages in every batch. */
function batches(): BatchSource {
  let pos = 0;
  let s = 12345;
  const rnd = (n: number) => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return 3 + (s % (n - 3));
  };
  return {
    next(): IteratorResult<TrainBatch> {
      const B = 8;
      const L = 16;
      const ids = () => Int32Array.from({ length: B * L }, () => rnd(VOCAB));
      const tgt = ids();
      const tgtIn = new Int32Array(B * L);
      for (let b = 0; b < B; b++) {
        tgtIn[b * L] = 1;
        tgtIn.set(tgt.subarray(b * L, b * L + L - 1), b * L + 1);
      }
      const lang = Int32Array.from({ length: B }, (_, b) => (pos + b) % TASKS);
      pos++;
      return {
        done: false,
        value: {
          size: B,
          srcLen: L,
          tgtLen: L,
          srcIds: ids(),
          srcMask: new Uint8Array(B * L).fill(1),
          tgtInIds: tgtIn,
          tgtOutIds: tgt,
          tgtMask: new Uint8Array(B * L).fill(1),
          targetLangIds: lang,
          pairIds: lang,
          taskTypeIds: new Int32Array(B),
          srcTokens: B * L,
          tgtTokens: B * L,
        },
      };
    },
    state: () => pos,
    restore: (p) => {
      pos = p as number;
    },
  };
}

const params = model.numParameters();
const out: Record<string, unknown> = {
  experts: E,
  offload,
  paged,
  params,
  residentParams: [...model.variables().values()].reduce((n, v) => n + v.size, 0),
  initS: +(initMs / 1000).toFixed(1),
};
try {
  const config = TrainConfig.parse({
    maxSteps: steps,
    evalEvery: 0,
    saveEvery: 0,
    logEvery: 1,
    optimizer: { lr: 1e-4, weightDecay: 1e-4, schedule: { type: "constant", warmupSteps: 1 } },
    ...(offload ? { offload: offloadConfig } : {}),
  });
  const trainer = new Trainer({
    model,
    config,
    data: batches(),
    runDir,
    runConfig: {},
    progress: new Progress({ write: () => true } as unknown as NodeJS.WriteStream, false),
    handleSignals: false,
    fresh: true,
  });
  let tokens = 0;
  let ms = 0;
  let read = 0;
  let written = 0;
  for (let i = 0; i < steps; i++) {
    const r = await trainer.trainStep();
    if (process.env.BENCH_OFFLOAD_DEBUG)
      console.error(JSON.stringify({ timings: r.timings, memory: r.memory, paged: pager?.lastStep() }));
    if (i > 0) {
      // The first step allocates the optimizer state; time the rest.
      tokens += r.tokens;
      ms += r.timings.total;
      read += r.memory.diskBytesRead;
      written += r.memory.diskBytesWritten;
    }
  }
  const peak = process.resourceUsage().maxRSS * 1024;
  Object.assign(out, {
    ok: peak <= budgetGB * 2 ** 30,
    peakRssGB: peak / 2 ** 30,
    tokensPerS: tokens / (ms / 1000),
    stepMs: ms / (steps - 1),
    diskReadMBPerStep: read / (steps - 1) / 2 ** 20,
    diskWrittenMBPerStep: written / (steps - 1) / 2 ** 20,
    ...(pager ? { expertsPerStep: pager.lastStep()?.expertsUpdated } : {}),
  });
  if (!out.ok) out.error = `peak RSS ${(peak / 2 ** 30).toFixed(3)} GB over the ${budgetGB} GB budget`;
} catch (e) {
  Object.assign(out, {
    ok: false,
    peakRssGB: process.resourceUsage().maxRSS / 2 ** 20,
    error: (e as Error).message,
  });
} finally {
  rmSync(runDir, { recursive: true, force: true });
  if (!a.dir) rmSync(storeDir, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
