// pnpm bench:train — training throughput of the shipped `dense-base` and
// `taskmoe-base` architectures on the native backend, measured side by side in
// one process on the same real batches, with where each step's time goes and
// the fraction of the machine's measured FMA peak the step reaches.
//
//   pnpm bench:train [--corpus DIR] [--max-tokens N] [--steps N] [--warmup N]
//
// The corpus defaults to runs/data/quick (prepared on first use, ~20 s).
// Last line: one JSON object with train_tokens_per_s_dense,
// train_tokens_per_s_taskmoe and moe_share (the MoE layers' share of a
// taskmoe-base step, forward and backward).
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

import {
  consoleProgress,
  createBatchIterator,
  loadTrainingData,
  mergeConfig,
  openCorpus,
  PREPARE_PRESETS,
  parsePrepareConfig,
  prepareCorpus,
} from "@polymoe/data";
import { nativeAddon, useBackend } from "@polymoe/kernels";
import { type ModelConfig, moeLayerIndices, Transformer } from "@polymoe/model";
import { type BatchSource, Progress, type StepTimings, type TrainBatch, Trainer } from "@polymoe/train";

import { modelConfigFor, readConfigFile, resolveRunConfig } from "../src/index.js";

const { values: args } = parseArgs({
  options: {
    corpus: { type: "string", default: "runs/data/quick" },
    "max-tokens": { type: "string", default: "2048" },
    steps: { type: "string", default: "6" },
    warmup: { type: "string", default: "2" },
  },
});
const maxTokens = Number(args["max-tokens"]);
const steps = Number(args.steps);
const warmup = Number(args.warmup);

const backend = await useBackend("native");
console.log(`backend: ${backend.backend} — ${backend.detail}`);

// Relative to where pnpm was invoked (the repository root for `pnpm bench:train`).
const corpusDir = path.resolve(process.env.INIT_CWD ?? process.cwd(), args.corpus);
if (!existsSync(path.join(corpusDir, "manifest.json"))) {
  console.log(`corpus ${corpusDir} not found: preparing it (preset quick)`);
  await prepareCorpus(parsePrepareConfig(mergeConfig(PREPARE_PRESETS.quick, { out: corpusDir }), "prepare"), {
    progress: consoleProgress(),
  });
}
const corpus = await openCorpus(corpusDir);
const data = await loadTrainingData(corpus);

const addon = nativeAddon();
addon?.fmaPeak(2e6);
const peak = addon ? Math.max(addon.fmaPeak(2e7), addon.fmaPeak(2e7)) : Number.NaN;
console.log(`measured FMA peak: ${peak.toFixed(1)} GFLOP/s`);

/**
 * Matmul FLOPs of one training step (forward + backward = 3x forward) from the
 * batch's real shapes: projections, attention scores and values, dense FFNs or
 * the k experts each token is routed to (at the layer's expert width), and the
 * output projection.
 */
function stepFlops(m: ModelConfig, b: { size: number; srcLen: number; tgtLen: number }): number {
  const d = m.dModel;
  const B = b.size;
  const S = b.srcLen;
  const T = b.tgtLen;
  const ffn = (stack: "encoder" | "decoder", layer: number, tokens: number): number => {
    const p = m.moe?.[stack];
    const dense = 2 * d * (m.ffnWidths?.[stack]?.[String(layer)] ?? m.dFF) * tokens;
    if (!p || !moeLayerIndices(p, stack === "encoder" ? m.encoderLayers : m.decoderLayers).includes(layer)) {
      return dense;
    }
    const k = "k" in p.router ? p.router.k : 2;
    return 2 * d * (p.dFF ?? m.dFF) * k * tokens + (p.residual ? dense : 0);
  };
  let macs = 0;
  for (let l = 0; l < m.encoderLayers; l++)
    macs += 4 * d * d * B * S + 2 * B * S * S * d + ffn("encoder", l, B * S);
  for (let l = 0; l < m.decoderLayers; l++) {
    macs += 4 * d * d * B * T + 2 * B * T * T * d; // self-attention
    macs += 2 * d * d * B * T + 2 * d * d * B * S + 2 * B * T * S * d; // cross-attention
    macs += ffn("decoder", l, B * T);
  }
  macs += d * m.vocabSize * B * T;
  return 3 * 2 * macs;
}

interface Measured {
  name: string;
  params: number;
  tgtTokensPerS: number;
  tokensPerS: number;
  stepMs: number;
  gflops: number;
  parts: Record<"attention" | "moe" | "other" | "optimizer" | "data", number>;
}

async function measure(name: string): Promise<Measured> {
  const file = readConfigFile(name);
  const run = resolveRunConfig(
    file.value,
    { data: { corpus: corpusDir, loader: { maxTokens } }, train: { evalEvery: 0, saveEvery: 0 } },
    file.source,
  );
  // The same batches for both models: a fresh iterator with the same seed.
  const iterator = createBatchIterator(data, run.data.loader);
  const modelConfig = modelConfigFor(run, iterator.taskSpace, data.tokenizer.vocabSize, file.source);
  const model = new Transformer(modelConfig, { seed: 1 });
  const runDir = mkdtempSync(path.join(tmpdir(), "polymoe-bench-train-"));
  // Records each batch the trainer draws (for its shapes).
  let last: TrainBatch | undefined;
  const source: BatchSource = {
    next: () => {
      const r = iterator.next();
      last = r.value;
      return r;
    },
    state: () => iterator.state(),
    restore: (s) => iterator.restore(s as never),
  };
  const trainer = new Trainer({
    model,
    config: run.train,
    data: source,
    runDir,
    runConfig: {},
    progress: new Progress({ write: () => true } as unknown as NodeJS.WriteStream, false),
    handleSignals: false,
    fresh: true,
  });
  const params = model.numParameters();
  const sum: StepTimings = { data: 0, forward: 0, backward: 0, optimizer: 0, total: 0, sections: {} };
  let tgtTokens = 0;
  let allTokens = 0;
  let flops = 0;
  try {
    for (let i = 0; i < warmup + steps; i++) {
      const r = await trainer.trainStep();
      const batch = last as TrainBatch;
      if (i < warmup) continue;
      const t = r.timings;
      sum.data += t.data;
      sum.forward += t.forward;
      sum.backward += t.backward;
      sum.optimizer += t.optimizer;
      sum.total += t.total;
      for (const [k, v] of Object.entries(t.sections)) {
        const key = k as keyof StepTimings["sections"];
        sum.sections[key] = (sum.sections[key] ?? 0) + v;
      }
      tgtTokens += r.tokens;
      allTokens += batch.srcTokens + batch.tgtTokens;
      flops += stepFlops(modelConfig, batch);
      console.log(
        `  ${name} step ${i - warmup + 1}/${steps}: ${t.total.toFixed(0)} ms, ${batch.size}×(${batch.srcLen}→${batch.tgtLen}), ` +
          `forward ${t.forward.toFixed(0)} backward ${t.backward.toFixed(0)} optimizer ${t.optimizer.toFixed(0)} ms`,
      );
    }
  } finally {
    trainer.dispose();
    model.dispose();
    rmSync(runDir, { recursive: true, force: true });
  }
  // The backward pass is attributed to model parts in proportion to their
  // measured forward time (the backward of a part costs ~2x its forward).
  const sec = sum.sections;
  const fwdParts = (sec.attention ?? 0) + (sec.moe ?? 0);
  const backwardScale = sum.forward > 0 ? 1 + sum.backward / sum.forward : 1;
  const attention = (sec.attention ?? 0) * backwardScale;
  const moe = (sec.moe ?? 0) * backwardScale;
  const parts = {
    attention: attention / sum.total,
    moe: moe / sum.total,
    other: (sum.forward + sum.backward - fwdParts * backwardScale) / sum.total,
    optimizer: sum.optimizer / sum.total,
    data: sum.data / sum.total,
  };
  return {
    name,
    params,
    tgtTokensPerS: tgtTokens / (sum.total / 1000),
    tokensPerS: allTokens / (sum.total / 1000),
    stepMs: sum.total / steps,
    gflops: flops / (sum.total / 1000) / 1e9,
    parts,
  };
}

console.log(
  `\n${steps} measured steps (after ${warmup} warm-up) per model, batches of ≤${maxTokens} tokens\n`,
);
const dense = await measure("dense-base");
const moe = await measure("taskmoe-base");

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
console.log("");
console.log(
  [
    "model          params       step ms   tgt tok/s  src+tgt tok/s  GFLOP/s  of peak  attention    moe  other  optimizer  data",
    ...[dense, moe].map(
      (m) =>
        `${m.name.padEnd(13)} ${m.params.toLocaleString("en-US").padStart(12)} ${m.stepMs.toFixed(0).padStart(9)} ` +
        `${m.tgtTokensPerS.toFixed(0).padStart(11)} ${m.tokensPerS.toFixed(0).padStart(14)} ${m.gflops.toFixed(1).padStart(8)} ` +
        `${pct(m.gflops / peak).padStart(8)} ${pct(m.parts.attention).padStart(10)} ${pct(m.parts.moe).padStart(6)} ` +
        `${pct(m.parts.other).padStart(6)} ${pct(m.parts.optimizer).padStart(10)} ${pct(m.parts.data).padStart(5)}`,
    ),
  ].join("\n"),
);
console.log(
  `\ntaskmoe-base / dense-base: ${(moe.params / dense.params).toFixed(2)}x the parameters at ` +
    `${(moe.tgtTokensPerS / dense.tgtTokensPerS).toFixed(2)}x the training throughput`,
);
console.log(
  "(tokens/s count target tokens, as the loss does; backward time is split across model parts in proportion to their forward time)",
);
console.log(
  JSON.stringify({
    train_tokens_per_s_dense: +dense.tgtTokensPerS.toFixed(0),
    train_tokens_per_s_taskmoe: +moe.tgtTokensPerS.toFixed(0),
    moe_share: +moe.parts.moe.toFixed(3),
    taskmoe_vs_dense: +(moe.tgtTokensPerS / dense.tgtTokensPerS).toFixed(3),
    params_dense: dense.params,
    params_taskmoe: moe.params,
    gflops_dense: +dense.gflops.toFixed(1),
    gflops_taskmoe: +moe.gflops.toFixed(1),
    fma_peak_gflops: +peak.toFixed(1),
    max_tokens: maxTokens,
  }),
);
