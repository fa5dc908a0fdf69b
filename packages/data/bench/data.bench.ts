// pnpm bench:data — read → tokenize → batch throughput on one core (JavaScript runs on
// one thread), on the quick corpus (built first when missing: ~20 s with apt, UDHR
// without). Side by side in one process:
//   read      streaming the train TSV files (lines, characters)
//   tokenize  PolyMoE's encoder (cold: fresh word cache) vs tokenizers.js on the same text
//   batch     the multitask iterator (temperature sampling, denoising noise, bucketing)
//   pipeline  read → tokenize → batch over one virtual epoch: tokens_per_s
// Last line: one JSON object of the figures.
import { promises as fsp } from "node:fs";
import path from "node:path";

import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";

import {
  consoleProgress,
  createBatchIterator,
  loadTrainingData,
  openCorpus,
  PREPARE_PRESETS,
  parseLoaderConfig,
  parsePrepareConfig,
  prepareCorpus,
  Tokenizer,
  trainingDataFromPairs,
} from "../src/index.js";
import { readLines } from "../src/util/fs.js";

const root = path.resolve(import.meta.dirname, "../../..");
const dir = process.env.POLYMOE_BENCH_CORPUS ?? path.join(root, "runs/data/quick");

if (!(await fsp.stat(path.join(dir, "manifest.json")).catch(() => undefined))) {
  console.log(`building the quick corpus in ${dir} (once)`);
  await prepareCorpus(parsePrepareConfig({ ...PREPARE_PRESETS.quick, out: dir }), {
    progress: consoleProgress(),
  });
}
const corpus = await openCorpus(dir);
const tokJson = JSON.parse(await fsp.readFile(path.join(dir, corpus.manifest.tokenizer.file), "utf8"));
const files = Object.values(corpus.manifest.splits.train ?? {}).map((f) => path.join(dir, f.file));
const langs = corpus.languages.slice(1);
const loader = parseLoaderConfig({ seed: 1 });

const now = () => performance.now();
const rate = (n: number, ms: number) => n / (ms / 1000);
const fmt = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(1)}k`);

// 1. read
let t = now();
const rows = new Map<string, Array<[string, string]>>();
let chars = 0;
for (const [i, f] of files.entries()) {
  const list: Array<[string, string]> = [];
  for await (const [, line] of readLines(f)) {
    const tab = line.indexOf("\t");
    list.push([line.slice(0, tab), line.slice(tab + 1)]);
    chars += line.length + 1;
  }
  rows.set(langs[i]!, list);
}
const readMs = now() - t;
const pairs = [...rows.values()].reduce((a, r) => a + r.length, 0);

// 2. tokenize: ours (fresh instance, so the word cache starts cold) vs tokenizers.js
const texts: string[] = [];
for (const r of rows.values()) for (const [e, x] of r) texts.push(e, x);
t = now();
const ours = Tokenizer.fromJSON(tokJson);
const buf: number[] = [];
for (const s of texts) ours.encodeInto(s, buf);
const oursMs = now() - t;
const tokens = buf.length;
const hf = new HfTokenizer(tokJson, {});
const hfSample = texts.slice(0, Math.min(texts.length, 40_000));
t = now();
let hfTokens = 0;
for (const s of hfSample) hfTokens += hf.encode(s, { add_special_tokens: false }).ids.length;
const hfMs = now() - t;
let oursSampleTokens = 0;
const fresh = Tokenizer.fromJSON(tokJson);
t = now();
for (const s of hfSample) oursSampleTokens += fresh.encode(s).length;
const oursSampleMs = now() - t;
if (oursSampleTokens !== hfTokens)
  throw new Error(`token counts differ: ours ${oursSampleTokens}, tokenizers.js ${hfTokens}`);

// 3. batch: the iterator over the tokenized data, one virtual epoch
t = now();
const data = trainingDataFromPairs(ours, rows);
const buildMs = now() - t;
t = now();
const it = createBatchIterator(data, loader);
const nb = it.batchesPerEpoch;
let batchTokens = 0;
let padded = 0;
for (let i = 0; i < nb; i++) {
  const b = it.nextBatch();
  batchTokens += b.srcTokens + b.tgtTokens;
  padded += b.size * (b.srcLen + b.tgtLen);
}
const batchMs = now() - t;

// The same iterator on the prepared binary token files (what training does).
t = now();
const loaded = await loadTrainingData(corpus);
const loadMs = now() - t;

const pipelineMs = readMs + oursMs + buildMs + batchMs;
const figures = {
  corpus: path.relative(root, dir),
  languages: langs.length,
  pairs,
  read_lines_per_s: Math.round(rate(pairs, readMs)),
  read_mb_per_s: Number((rate(chars, readMs) / 1e6).toFixed(1)),
  tokenize_tokens_per_s: Math.round(rate(tokens, oursMs)),
  tokenize_sentences_per_s: Math.round(rate(texts.length, oursMs)),
  tokenizersjs_tokens_per_s: Math.round(rate(hfTokens, hfMs)),
  tokenize_vs_tokenizersjs: Number((rate(oursSampleTokens, oursSampleMs) / rate(hfTokens, hfMs)).toFixed(1)),
  batch_tokens_per_s: Math.round(rate(batchTokens, batchMs)),
  batches_per_s: Math.round(rate(nb, batchMs)),
  batch_padding_fraction: Number((1 - batchTokens / padded).toFixed(3)),
  load_token_files_ms: Math.round(loadMs),
  loaded_pairs: [...loaded.pairs.values()].reduce((a, p) => a + p.n, 0),
  tokens_per_s: Math.round(rate(batchTokens, pipelineMs)),
};

console.log(`corpus ${figures.corpus}: ${langs.length} languages, ${pairs} training pairs, ${tokens} tokens`);
console.log("stage                         rate");
console.log(
  `read TSV                      ${fmt(figures.read_lines_per_s)} pairs/s  (${figures.read_mb_per_s} MB/s)`,
);
console.log(`tokenize (PolyMoE, cold)      ${fmt(figures.tokenize_tokens_per_s)} tokens/s`);
console.log(
  `tokenize (tokenizers.js)      ${fmt(figures.tokenizersjs_tokens_per_s)} tokens/s  → PolyMoE ${figures.tokenize_vs_tokenizersjs}× on the same ${hfSample.length} sentences (identical ids)`,
);
console.log(
  `batch (1 epoch, ${nb} batches)  ${fmt(figures.batch_tokens_per_s)} tokens/s, ${figures.batches_per_s} batches/s, padding ${(figures.batch_padding_fraction * 100).toFixed(1)}%`,
);
console.log(
  `load token files              ${figures.load_token_files_ms} ms for ${figures.loaded_pairs} pairs`,
);
console.log(`pipeline read→tokenize→batch  ${fmt(figures.tokens_per_s)} tokens/s`);
console.log(JSON.stringify(figures));
