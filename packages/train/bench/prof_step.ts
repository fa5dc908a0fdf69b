import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { useBackend } from "@polymoe/kernels";
import { Transformer } from "@polymoe/model";
import * as tf from "@tensorflow/tfjs-core";
import { Progress, type TrainBatch, TrainConfig, Trainer } from "../src/index.js";

await useBackend("native");
const V = 8000,
  B = 64,
  L = 20;
const model = new Transformer(
  {
    vocabSize: V,
    dModel: 256,
    heads: 4,
    dFF: 1024,
    encoderLayers: 3,
    decoderLayers: 3,
    moe: {
      encoder: { numExperts: 8, router: { type: "topk", k: 2 } },
      decoder: { numExperts: 8, router: { type: "task", k: 2, numTasks: 8 } },
    },
  },
  { seed: 1 },
);
console.log("params", model.numParameters());
let pos = 0;
const mkBatch = (): TrainBatch => {
  const r = (i: number) => (((i * 2654435761 + pos * 97) >>> 0) % (V - 10)) + 10;
  const n = B * L;
  const ids = Int32Array.from({ length: n }, (_, i) => r(i));
  return {
    size: B,
    srcLen: L,
    tgtLen: L,
    srcIds: ids,
    srcMask: new Float32Array(n).fill(1),
    tgtInIds: ids,
    tgtOutIds: ids,
    tgtMask: new Float32Array(n).fill(1),
    targetLangIds: Int32Array.from({ length: B }, (_, i) => i % 8),
    pairIds: new Int32Array(B),
    taskTypeIds: new Int32Array(B),
    srcTokens: n,
    tgtTokens: n,
  };
};
const source = {
  next: () => {
    pos++;
    return { done: false, value: mkBatch() } as IteratorResult<TrainBatch>;
  },
  state: () => ({}),
  restore: () => {},
};
const config = TrainConfig.parse({
  maxSteps: 100,
  evalEvery: 0,
  saveEvery: 0,
  optimizer: { lr: 1e-3, schedule: { type: "constant", warmupSteps: 1 } },
});
const t = new Trainer({
  model,
  config,
  data: source,
  runDir: mkdtempSync(path.join(tmpdir(), "prof-")),
  runConfig: {},
  progress: new Progress({ write: () => true } as never, false),
  handleSignals: false,
});
for (let i = 0; i < 3; i++) await t.trainStep();
const N = 8;
const t0 = performance.now();
for (let i = 0; i < N; i++) await t.trainStep();
const ms = (performance.now() - t0) / N;
console.log(`step ${ms.toFixed(0)} ms, ${(((B * L) / ms) * 1000).toFixed(0)} target tok/s`);
const prof = await tf.profile(async () => {
  await t.trainStep();
});
const byK = new Map<string, [number, number]>();
for (const k of prof.kernels) {
  const e = byK.get(k.name) ?? [0, 0];
  e[0] += k.kernelTimeMs as number;
  e[1]++;
  byK.set(k.name, e);
}
let tot = 0;
for (const [, [v]] of byK) tot += v;
console.log("kernel ms total", tot.toFixed(0), "kernels", prof.kernels.length);
for (const [n, [v, c]] of [...byK].sort((a, b) => b[1][0] - a[1][0]).slice(0, 14))
  console.log(n.padEnd(26), v.toFixed(1), c);
