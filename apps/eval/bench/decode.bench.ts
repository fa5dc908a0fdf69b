// pnpm bench:decode — greedy decoding throughput of a TokenMoE model, the same
// architecture as a TaskMoE model, and the TaskMoE's extracted subnetwork for
// one task, at batch 32 and batch 1, on real dev sentences, side by side in one
// process (native backend).
//
//   pnpm bench:decode [--tokenmoe DIR] [--taskmoe DIR] [--direction en-fr]
//                     [--length 32] [--sentences 64] [--train-steps 30] [--corpus DIR] [--rounds 9]
//                     [--d-model N] [--d-ff N] [--peak-batches 32,64,128] [--profile]
//
// Without --tokenmoe/--taskmoe, both models are trained here for --train-steps
// steps from the `quick` config with 32 experts in the decoder's MoE layers
// (top-2 of 32 on alternate layers, as in the TaskMoE paper): same encoder,
// same expert shapes; only the decoder's router differs (token top-2 vs
// target-language). Every output is forced to exactly --length tokens
// (eos barred before it), so the three models decode the same number of
// tokens whatever their quality. --profile adds, per model, the kernels that
// one batch-32 pass spends its time in (tf.profile). --d-model/--d-ff widen the
// trained models (e.g. 512/2048, where the 32 experts of a layer outgrow the
// CPU's cache, as a large model's do). --peak-batches also times the models at
// those batch sizes and reports each one's peak (the TaskMoE paper compares
// peak decoding throughput). Last line: one JSON object of the figures.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

import { readConfigFile, resolveRunConfig, runTraining } from "@polymoe/app-train";
import { openCorpus } from "@polymoe/data";
import { extractTask, type LoadedModel, loadModel, loadSplit, translate } from "@polymoe/eval";
import { CachedAttention, CacheWrite, NATIVE_BACKEND_NAME, useBackend } from "@polymoe/kernels";
import { getKernel, profile, registerKernel, unregisterKernel } from "@tensorflow/tfjs-core";

const { values: args } = parseArgs({
  options: {
    tokenmoe: { type: "string" },
    taskmoe: { type: "string" },
    corpus: { type: "string", default: "runs/data/quick" },
    direction: { type: "string", default: "en-fr" },
    length: { type: "string", default: "32" },
    sentences: { type: "string", default: "64" },
    "b1-sentences": { type: "string", default: "16" },
    "train-steps": { type: "string", default: "30" },
    "d-model": { type: "string" },
    "d-ff": { type: "string" },
    rounds: { type: "string", default: "9" },
    keep: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    "peak-batches": { type: "string" },
  },
});
const L = Number(args.length);
const nSentences = Number(args.sentences);
const nB1 = Number(args["b1-sentences"]);
const trainSteps = Number(args["train-steps"]);
const rounds = Number(args.rounds);
const [srcLang, tgtLang] = args.direction.split("-") as [string, string];
// Paths are relative to where pnpm was invoked (the repository root for
// `pnpm bench:decode`), including those inside checkpoints (their corpus).
const cwd = process.env.INIT_CWD ?? process.cwd();
process.chdir(cwd);
const corpusPath = path.resolve(cwd, args.corpus);

const backend = await useBackend("native");
console.log(`backend: ${backend.backend} — ${backend.detail}`);
const work = mkdtempSync(path.join(tmpdir(), "polymoe-bench-decode-"));

/** Trains the quick architecture with a 32-expert decoder routed by `router` for a few steps. */
async function trainModel(kind: "tokenmoe" | "taskmoe"): Promise<string> {
  const file = readConfigFile("quick");
  const router =
    kind === "taskmoe"
      ? { type: "task", k: 2 }
      : { type: "topk", k: 2, capacityFactor: 1.25, evalCapacityFactor: 2 };
  const dir = path.join(work, kind);
  const config = resolveRunConfig(
    file.value,
    {
      data: { corpus: corpusPath },
      model: {
        ...(args["d-model"] ? { dModel: Number(args["d-model"]) } : {}),
        ...(args["d-ff"] ? { dFF: Number(args["d-ff"]) } : {}),
        moe: { decoder: { numExperts: 32, taskKey: "target-language", router } },
      },
      train: { maxSteps: trainSteps, evalEvery: 0, saveEvery: trainSteps, logEvery: Math.max(1, trainSteps) },
      dev: { lossSentencesPerPair: 8, bleuSentencesPerPair: 0 },
      run: { dir },
    },
    file.source,
  );
  console.log(`training the ${kind} model for ${trainSteps} steps (quick config, 32 decoder experts) ...`);
  await runTraining(config, { log: () => {} });
  return dir;
}

const tokenDir = args.tokenmoe ? path.resolve(cwd, args.tokenmoe) : await trainModel("tokenmoe");
const taskDir = args.taskmoe ? path.resolve(cwd, args.taskmoe) : await trainModel("taskmoe");
const extractedDir = path.join(work, `extracted-${tgtLang}`);
const extraction = await extractTask(taskDir, tgtLang, extractedDir);

const models: Record<string, LoadedModel> = {
  tokenmoe: await loadModel(tokenDir, { namespace: "bench.tokenmoe" }),
  taskmoe_full: await loadModel(taskDir, { namespace: "bench.taskmoe" }),
  taskmoe_extracted: await loadModel(extractedDir, { namespace: "bench.extracted" }),
};
const corpusDir = corpusPath;
if (!existsSync(path.join(corpusDir, "manifest.json"))) throw new Error(`no corpus at ${corpusDir}`);
const sets = await loadSplit(await openCorpus(corpusDir), "dev");
const set = sets.find((s) => s.srcLang === srcLang && s.tgtLang === tgtLang);
if (!set) {
  throw new Error(
    `--direction ${args.direction}: not in the dev split (${sets.map((s) => `${s.srcLang}-${s.tgtLang}`).join(", ")})`,
  );
}
const sources = set.sources.slice(0, nSentences);

const decoderParams = (m: LoadedModel) => {
  let n = 0;
  for (const [name, v] of m.model.variables()) if (name.startsWith("decoder.")) n += v.size;
  return n;
};

/** Tokens per second of one greedy pass over `sents` at batch size `batch`, every output exactly L tokens. */
// Time spent in each model's encoder (wrapped below), so a pass also yields the
// decoder's own tokens/s: the part extraction changes (the encoder is the same
// token-routed stack in all three models and runs once per batch).
const encodeMs = new Map<LoadedModel["model"], number>();
for (const m of Object.values(models)) {
  const encode = m.model.encode.bind(m.model);
  encodeMs.set(m.model, 0);
  m.model.encode = (batch, rng) => {
    const t0 = performance.now();
    const out = encode(batch, rng);
    encodeMs.set(m.model, (encodeMs.get(m.model) as number) + performance.now() - t0);
    return out;
  };
}
let lastDecoderOnly = 0;

function throughput(m: LoadedModel, sents: readonly string[], batch: number): number {
  const enc0 = encodeMs.get(m.model) as number;
  const t0 = performance.now();
  translate(m.model, m.tokenizer, m.space, sents, srcLang, tgtLang, {
    batchSize: batch,
    beamSize: 1,
    minLength: L,
    maxLenRatio: 0,
    maxLenOffset: L,
  });
  const ms = performance.now() - t0;
  lastDecoderOnly = (sents.length * L) / ((ms - ((encodeMs.get(m.model) as number) - enc0)) / 1000);
  return (sents.length * L) / (ms / 1000);
}

console.log(
  `\ndecoding ${args.direction}: ${sources.length} dev sentences at batch 32, ${Math.min(nB1, sources.length)} at batch 1; every output ${L} tokens; greedy; median of ${rounds} rounds that alternate the models\n`,
);
const rows: [string, number, number, number, number, number][] = [];
const figures: Record<string, number> = {};
// The same TokenMoE decoding with the key/value cache and attention as stock
// tfjs ops (concat, batched matmuls, softmax): what the fused kernels buy.
const fusedKernels = [CachedAttention, CacheWrite].map((k) => {
  const config = getKernel(k, NATIVE_BACKEND_NAME);
  if (!config) throw new Error(`${k} is not registered on ${NATIVE_BACKEND_NAME}`);
  return config;
});
const stockAttention = <T>(f: () => T): T => {
  for (const k of fusedKernels) unregisterKernel(k.kernelName, NATIVE_BACKEND_NAME);
  try {
    return f();
  } finally {
    for (const k of fusedKernels) registerKernel(k);
  }
};
// On a shared VM one model's speed moves by up to 30% between invocations and
// within one, so each round times every variant once, back to back (order
// rotating), and the figures are medians over rounds; ratios are taken within
// a round, then their median.
type Variant = "tokenmoe" | "taskmoe_full" | "taskmoe_extracted" | "tokenmoe_stock";
const variants: Variant[] = ["tokenmoe", "taskmoe_full", "taskmoe_extracted", "tokenmoe_stock"];
const modelOf = (v: Variant) => models[v === "tokenmoe_stock" ? "tokenmoe" : v] as LoadedModel;
const pass = (v: Variant, sents: readonly string[], batch: number) =>
  v === "tokenmoe_stock"
    ? stockAttention(() => throughput(modelOf(v), sents, batch))
    : throughput(modelOf(v), sents, batch);
const b1Sources = sources.slice(0, nB1);
for (const v of variants) pass(v, sources.slice(0, 32), 32); // warm-up: buffers, JIT
type Samples = { b32: number[]; b1: number[]; dec32: number[] };
const samples = new Map<Variant, Samples>(variants.map((v) => [v, { b32: [], b1: [], dec32: [] }]));
for (let round = 0; round < rounds; round++) {
  const order = variants.map((_, i) => variants[(i + round) % variants.length] as Variant);
  for (const v of order) {
    const s = samples.get(v) as Samples;
    s.b32.push(pass(v, sources, 32));
    s.dec32.push(lastDecoderOnly);
    s.b1.push(pass(v, b1Sources, 1));
  }
}
// Peak throughput: each model at each batch size, rounds alternating like above.
const peakBatches = (args["peak-batches"] ?? "")
  .split(",")
  .filter(Boolean)
  .map((b) => {
    const n = Number(b);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--peak-batches: '${b}' is not a batch size`);
    return n;
  });
const peakSamples = new Map<string, number[]>();
for (let round = 0; round < (peakBatches.length ? rounds : 0); round++) {
  for (const bs of peakBatches) {
    for (const v of ["tokenmoe", "taskmoe_extracted"] as const) {
      const key = `${v}@${bs}`;
      peakSamples.set(key, [...(peakSamples.get(key) ?? []), pass(v, sources, bs)]);
    }
  }
}
const median = (xs: readonly number[]) => {
  const a = [...xs].sort((x, y) => x - y);
  const n = a.length;
  return n % 2 ? (a[(n - 1) / 2] as number) : ((a[n / 2 - 1] as number) + (a[n / 2] as number)) / 2;
};
const ratios = (a: Variant, b: Variant, key: keyof Samples) => {
  const x = (samples.get(a) as Samples)[key];
  const y = (samples.get(b) as Samples)[key];
  return x.map((v, i) => v / (y[i] as number));
};
const best = new Map<string, { b32: number; b1: number; dec32: number }>();
for (const v of variants) {
  const s = samples.get(v) as Samples;
  best.set(v, { b32: median(s.b32), b1: median(s.b1), dec32: median(s.dec32) });
}
const stock = best.get("tokenmoe_stock") as { b32: number; b1: number };
const spread = (xs: number[]) =>
  `${median(xs).toFixed(2)}x (rounds: ${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
for (const [name, m] of Object.entries(models)) {
  const { b32, b1, dec32 } = best.get(name) as { b32: number; b1: number; dec32: number };
  figures[`tokens_per_s_${name}_b32`] = +b32.toFixed(1);
  figures[`tokens_per_s_${name}_b1`] = +b1.toFixed(1);
  figures[`decoder_tokens_per_s_${name}_b32`] = +dec32.toFixed(1);
  rows.push([name, m.model.numParameters(), decoderParams(m), b32, b1, dec32]);
}
console.log("model               params    decoder params   tok/s b32   tok/s b1   decoder-only tok/s b32");
for (const [name, p, d, b32, b1, dec32] of rows) {
  console.log(
    `${name.padEnd(18)} ${p.toLocaleString("en-US").padStart(11)} ${d.toLocaleString("en-US").padStart(16)} ${b32.toFixed(0).padStart(11)} ${b1.toFixed(0).padStart(10)} ${dec32.toFixed(0).padStart(24)}`,
  );
}
const full = rows[1] as (typeof rows)[number];
const ext = rows[2] as (typeof rows)[number];
console.log(
  `${"tokenmoe, stock attn".padEnd(18)} ${"".padStart(11)} ${"".padStart(16)} ${stock.b32.toFixed(0).padStart(11)} ${stock.b1.toFixed(0).padStart(10)}`,
);
console.log(
  `\nfused cached attention vs stock tfjs ops (TokenMoE), per-round ratio: ${spread(ratios("tokenmoe", "tokenmoe_stock", "b32"))} at batch 32, ${spread(ratios("tokenmoe", "tokenmoe_stock", "b1"))} at batch 1`,
);
const extVsTok32 = ratios("taskmoe_extracted", "tokenmoe", "b32");
const decExtVsTok32 = ratios("taskmoe_extracted", "tokenmoe", "dec32");
console.log(
  `extracted vs TokenMoE, per-round ratio: ${spread(extVsTok32)} at batch 32, ${spread(ratios("taskmoe_extracted", "tokenmoe", "b1"))} at batch 1` +
    `\nextracted vs TokenMoE, decoder only (encoder time excluded): ${spread(decExtVsTok32)} at batch 32` +
    `\nextracted vs full TaskMoE, per-round ratio: ${spread(ratios("taskmoe_extracted", "taskmoe_full", "b32"))} at batch 32, ${spread(ratios("taskmoe_extracted", "taskmoe_full", "b1"))} at batch 1` +
    `\nextracted: ${((100 * ext[1]) / full[1]).toFixed(1)}% of the parameters, ${((100 * ext[2]) / full[2]).toFixed(1)}% of the decoder, ` +
    `checkpoint ${(extraction.bytes / 2 ** 20).toFixed(1)} MB vs ${(extraction.sourceBytes / 2 ** 20).toFixed(1)} MB`,
);
if (peakBatches.length) {
  const peakOf = (v: string) => {
    let best = { batch: 0, tps: 0 };
    for (const bs of peakBatches) {
      const m = median(peakSamples.get(`${v}@${bs}`) as number[]);
      if (m > best.tps) best = { batch: bs, tps: m };
    }
    return best;
  };
  console.log(
    `\npeak decoding throughput over batch sizes ${peakBatches.join(", ")} (${sources.length} sentences):`,
  );
  for (const v of ["tokenmoe", "taskmoe_extracted"]) {
    const cells = peakBatches.map(
      (bs) => `b${bs} ${median(peakSamples.get(`${v}@${bs}`) as number[]).toFixed(0)}`,
    );
    const p = peakOf(v);
    console.log(
      `  ${v.padEnd(18)} ${cells.join("  ")}  -> peak ${p.tps.toFixed(0)} tok/s at batch ${p.batch}`,
    );
    figures[`peak_tokens_per_s_${v}`] = +p.tps.toFixed(1);
  }
  const ratio = peakOf("taskmoe_extracted").tps / peakOf("tokenmoe").tps;
  figures.peak_extracted_vs_tokenmoe = +ratio.toFixed(3);
  console.log(`  extracted vs TokenMoE, peak: ${ratio.toFixed(2)}x`);
}
if (args.profile) {
  for (const [name, m] of Object.entries(models)) {
    const info = await profile(() => {
      translate(m.model, m.tokenizer, m.space, sources.slice(0, 32), srcLang, tgtLang, {
        batchSize: 32,
        beamSize: 1,
        minLength: L,
        maxLenRatio: 0,
        maxLenOffset: L,
      });
    });
    const byKernel = new Map<string, { ms: number; calls: number }>();
    let total = 0;
    for (const k of info.kernels) {
      const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
      e.ms += k.kernelTimeMs as number;
      e.calls++;
      total += k.kernelTimeMs as number;
      byKernel.set(k.name, e);
    }
    console.log(
      `\nprofile ${name}: ${info.kernels.length} kernel calls, ${total.toFixed(0)} ms of kernel time for ${32 * L} tokens`,
    );
    for (const [k, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 10)) {
      console.log(
        `  ${k.padEnd(28)} ${e.ms.toFixed(1).padStart(8)} ms ${((100 * e.ms) / total).toFixed(0).padStart(3)}% ${String(e.calls).padStart(6)} calls`,
      );
    }
  }
}
for (const m of Object.values(models)) m.model.dispose();
if (!args.keep) rmSync(work, { recursive: true, force: true });
else console.log(`(models kept in ${work})`);
console.log(
  JSON.stringify({
    tokens_per_s_tokenmoe_b32: figures.tokens_per_s_tokenmoe_b32,
    tokens_per_s_taskmoe_full_b32: figures.tokens_per_s_taskmoe_full_b32,
    tokens_per_s_taskmoe_extracted_b32: figures.tokens_per_s_taskmoe_extracted_b32,
    tokens_per_s_tokenmoe_b1: figures.tokens_per_s_tokenmoe_b1,
    tokens_per_s_taskmoe_full_b1: figures.tokens_per_s_taskmoe_full_b1,
    tokens_per_s_taskmoe_extracted_b1: figures.tokens_per_s_taskmoe_extracted_b1,
    params_full: full[1],
    params_extracted: ext[1],
    decoder_params_full: full[2],
    decoder_params_extracted: ext[2],
    extracted_vs_tokenmoe_b32: +median(extVsTok32).toFixed(3),
    extracted_vs_tokenmoe_b32_min: +Math.min(...extVsTok32).toFixed(3),
    extracted_vs_tokenmoe_b32_max: +Math.max(...extVsTok32).toFixed(3),
    decoder_tokens_per_s_tokenmoe_b32: figures.decoder_tokens_per_s_tokenmoe_b32,
    decoder_tokens_per_s_taskmoe_extracted_b32: figures.decoder_tokens_per_s_taskmoe_extracted_b32,
    decoder_extracted_vs_tokenmoe_b32: +median(decExtVsTok32).toFixed(3),
    tokens_per_s_tokenmoe_stock_attention_b32: +stock.b32.toFixed(1),
    cached_attention_speedup_b32: +median(ratios("tokenmoe", "tokenmoe_stock", "b32")).toFixed(3),
    ...(peakBatches.length
      ? {
          peak_tokens_per_s_tokenmoe: figures.peak_tokens_per_s_tokenmoe,
          peak_tokens_per_s_taskmoe_extracted: figures.peak_tokens_per_s_taskmoe_extracted,
          peak_extracted_vs_tokenmoe: figures.peak_extracted_vs_tokenmoe,
        }
      : {}),
  }),
);
