// pnpm bench:distill — what word-level distillation costs per training step, measured side by
// side in one process on the same real batches: plain training of the student (label-smoothed
// cross-entropy), KD with the teacher run on the fly (full distribution), and KD from a top-k
// logit cache filled beforehand (the teacher is not even loaded).
//
//   pnpm bench:distill [--corpus DIR] [--teacher CHECKPOINT] [--steps N] [--warmup N] [--top-k K]
//
// The teacher is the quick TokenMoE (the architecture of apps/train/configs/quick-tokenmoe.json,
// randomly initialised unless --teacher names a trained checkpoint: the cost of a step does not
// depend on the weights); the student is dense, the size of its extracted subnetwork. The corpus
// defaults to runs/data/quick (prepared on first use, ~20 s). Steps of the three trainers are
// interleaved so that machine load hits them alike; figures are medians.
// Last line: one JSON object with kd_step_ms_onthefly, kd_step_ms_cached, plain_step_ms and
// cache_mb_per_1k_tokens (plus the ratios and the cache fill cost).
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
  parseLoaderConfig,
  parsePrepareConfig,
  prepareCorpus,
} from "@polymoe/data";
import { useBackend } from "@polymoe/kernels";
import { ModelConfig, Transformer } from "@polymoe/model";
import { Progress, type TrainBatch, TrainConfig, Trainer } from "@polymoe/train";

import {
  type DistillBatch,
  DistillSource,
  denseParameters,
  kdTrainLoss,
  loadTeacher,
  readTeacherInfo,
  studentConfig,
  TopKCache,
} from "../src/index.js";

const { values: args } = parseArgs({
  options: {
    corpus: { type: "string", default: "runs/data/quick" },
    teacher: { type: "string" },
    steps: { type: "string", default: "6" },
    warmup: { type: "string", default: "2" },
    "top-k": { type: "string", default: "8" },
  },
});
const steps = Number(args.steps);
const warmup = Number(args.warmup);
const topK = Number(args["top-k"]);
const T = 1;
const alpha = 0.5;

const backend = await useBackend("native");
console.log(`backend: ${backend.backend} — ${backend.detail}`);

// Paths are relative to where pnpm was invoked (the repository root for `pnpm bench:distill`).
const cwd = process.env.INIT_CWD ?? process.cwd();
const corpusDir = path.resolve(cwd, args.corpus);
if (!existsSync(path.join(corpusDir, "manifest.json"))) {
  console.log(`corpus ${corpusDir} not found: preparing it (preset quick)`);
  await prepareCorpus(parsePrepareConfig(mergeConfig(PREPARE_PRESETS.quick, { out: corpusDir }), "prepare"), {
    progress: consoleProgress(),
  });
}
const corpus = await openCorpus(corpusDir);
const data = await loadTrainingData(corpus);
const V = data.tokenizer.vocabSize;
// The quick configs' loader.
const loader = parseLoaderConfig({
  maxTokens: 3072,
  maxSourceLength: 48,
  maxTargetLength: 48,
  taskMix: { translate: 0.9, denoise: 0.1 },
});

// Teacher: a trained checkpoint, or the quick TokenMoE architecture at random init.
const teacherInfo = args.teacher ? readTeacherInfo(path.resolve(cwd, args.teacher), "--teacher") : undefined;
const teacher = teacherInfo
  ? loadTeacher(teacherInfo)
  : new Transformer(
      {
        vocabSize: V,
        dModel: 256,
        heads: 4,
        dFF: 1024,
        encoderLayers: 3,
        decoderLayers: 3,
        dropout: 0.1,
        maxLength: 64,
        moe: {
          encoder: { numExperts: 8, router: { type: "topk", k: 2, capacityFactor: 1.25 } },
          decoder: { numExperts: 8, router: { type: "topk", k: 2, capacityFactor: 1.25 } },
        },
      },
      { seed: 1, namespace: "benchTeacher", trainable: false },
    );
if (teacher.config.vocabSize !== V)
  throw new Error(`--teacher has ${teacher.config.vocabSize} tokens, the corpus ${V}`);
const studentCfg = studentConfig(ModelConfig.parse(teacher.config));
console.log(
  `teacher: ${teacher.numParameters().toLocaleString("en-US")} parameters (${teacherInfo ? teacherInfo.dir : "quick TokenMoE, random init"}); ` +
    `student: ${denseParameters(studentCfg).toLocaleString("en-US")} parameters, dense, FFN widths ${JSON.stringify(studentCfg.ffnWidths)}`,
);

const train = TrainConfig.parse({
  maxSteps: 1000,
  evalEvery: 0,
  saveEvery: 0,
  optimizer: { lr: 1e-3, schedule: { type: "constant", warmupSteps: 10 } },
});
const quiet = new Progress({ write: () => true } as unknown as NodeJS.WriteStream, false);
const scratch = mkdtempSync(path.join(tmpdir(), "polymoe-bench-distill-"));
const iterator = () => createBatchIterator(data, loader);
const student = (name: string) => new Transformer(studentCfg, { seed: 7, namespace: name });
const common = (model: Transformer, dir: string) => ({
  model,
  config: train,
  runDir: path.join(scratch, dir),
  runConfig: {},
  progress: quiet,
  handleSignals: false,
});

// Fill the cache for every batch the cached trainer will draw (what a first run, or
// a separate precompute pass, does once).
const n = warmup + steps;
const cacheDir = path.join(scratch, "cache");
const identity = {
  teacher: { dir: teacherInfo?.dir ?? "random", digest: "bench" },
  data: data.fingerprint,
  vocabSize: V,
  topK,
  temperature: T,
  rank: 0,
  worldSize: 1,
};
const filler = new DistillSource({
  data: iterator(),
  teacher,
  temperature: T,
  cache: TopKCache.open(cacheDir, identity),
});
let targetTokens = 0;
let tailMass = 0;
const fill0 = performance.now();
for (let i = 0; i < n; i++) {
  const b = filler.next().value as DistillBatch;
  targetTokens += b.tgtTokens;
  if (b.teacher.kind === "topk") {
    for (let r = 0; r < b.teacher.rows; r++) {
      let m = 0;
      for (let j = 0; j < topK; j++) m += Math.exp(b.teacher.logProbs[r * topK + j] as number);
      tailMass += 1 - m;
    }
  }
}
filler.state(); // flushes
const fillMs = (performance.now() - fill0) / n;
const cache = TopKCache.open(cacheDir, identity);
const cacheBytes = cache.diskBytes();
const cacheMbPer1k = cacheBytes / 1e6 / (targetTokens / 1000);
console.log(
  `cache: ${n} batches, ${targetTokens.toLocaleString("en-US")} target tokens, ${(cacheBytes / 1e6).toFixed(2)} MB ` +
    `(${cacheMbPer1k.toFixed(4)} MB per 1k tokens; top-${topK} hold ${(100 * (1 - tailMass / targetTokens)).toFixed(1)}% of the teacher's mass); ` +
    `filled at ${fillMs.toFixed(0)} ms per batch (teacher forward + top-k + write)`,
);

const plainModel = student("plain");
const plain = new Trainer<TrainBatch>({ ...common(plainModel, "plain"), data: iterator() });
const flyModel = student("onthefly");
const flySource = new DistillSource({ data: iterator(), teacher, temperature: T });
const fly = new Trainer<DistillBatch>({
  ...common(flyModel, "onthefly"),
  data: flySource,
  loss: kdTrainLoss({ alpha, temperature: T }).loss,
});
const cachedModel = student("cached");
const cachedSource = new DistillSource({
  data: iterator(),
  teacher: () => {
    throw new Error("the cache must hold every measured batch");
  },
  temperature: T,
  cache,
});
const cached = new Trainer<DistillBatch>({
  ...common(cachedModel, "cached"),
  data: cachedSource,
  loss: kdTrainLoss({ alpha, temperature: T, tail: "spread" }).loss,
});

const times = { plain: [] as number[], onthefly: [] as number[], cached: [] as number[] };
const order: [keyof typeof times, Trainer<TrainBatch> | Trainer<DistillBatch>][] = [
  ["plain", plain],
  ["onthefly", fly],
  ["cached", cached],
];
for (let i = 0; i < n; i++) {
  const line: string[] = [];
  // Rotate who goes first so that no trainer always follows the same one.
  for (let j = 0; j < order.length; j++) {
    const [name, t] = order[(i + j) % order.length] as (typeof order)[number];
    const r = await t.trainStep();
    if (i >= warmup) times[name].push(r.timings.total);
    line.push(
      `${name} ${r.timings.total.toFixed(0)} ms (data+teacher ${r.timings.data.toFixed(0)}, loss ${r.loss.toFixed(3)})`,
    );
  }
  console.log(`step ${i + 1}${i < warmup ? " (warmup)" : ""}: ${line.join(" | ")}`);
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const plainMs = median(times.plain);
const flyMs = median(times.onthefly);
const cachedMs = median(times.cached);
console.log(
  `median step over ${steps} steps: plain ${plainMs.toFixed(0)} ms, KD on the fly ${flyMs.toFixed(0)} ms (${(flyMs / plainMs).toFixed(2)}x), ` +
    `KD cached top-${topK} ${cachedMs.toFixed(0)} ms (${(cachedMs / plainMs).toFixed(2)}x)`,
);
flySource.dispose();
cachedSource.dispose();
for (const t of [plain, fly, cached]) t.dispose();
for (const m of [plainModel, flyModel, cachedModel, teacher]) m.dispose();
rmSync(scratch, { recursive: true, force: true });
console.log(
  JSON.stringify({
    kd_step_ms_onthefly: Math.round(flyMs),
    kd_step_ms_cached: Math.round(cachedMs),
    plain_step_ms: Math.round(plainMs),
    cache_mb_per_1k_tokens: Number(cacheMbPer1k.toFixed(4)),
    onthefly_over_plain: Number((flyMs / plainMs).toFixed(3)),
    cached_over_plain: Number((cachedMs / plainMs).toFixed(3)),
    cache_fill_ms_per_batch: Math.round(fillMs),
    top_k: topK,
  }),
);
