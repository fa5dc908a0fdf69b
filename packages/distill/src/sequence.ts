// Sequence-level knowledge distillation (Kim & Rush 2016): the teacher translates the training
// sources with beam search, and the student trains on those outputs instead of the references.
//
// The result is a corpus in @polymoe/data's format that the ordinary trainer reads: the base
// corpus's files (tokenizer, evaluation splits, symmetric training pairs) linked or copied, plus
// one `directedTokens` file per translation direction whose targets are the teacher's outputs:
//   en→xx  (English source, teacher's xx)        xx→en  (teacher's English, xx source)
// Denoising keeps reading the real sentences. Token ids are stored as the teacher produced
// them (no detokenize/re-tokenize round trip); `seqkd/<pair>.tsv` shows them as text.
//
// Work is split into chunks of sentences per direction, each decoded in fixed, length-sorted
// batches and written atomically under <out>/work, so an interrupted run resumes at the first
// missing chunk and produces the same bytes as an uninterrupted one. The selection of sentences
// (maxPairsPerLanguage) is seeded; decoding itself is deterministic.
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";

import {
  type Corpus,
  type CorpusManifest,
  loadTrainingData,
  type PairTokens,
  type ProgressSink,
  silentProgress,
  type TaskSpace,
  type Tokenizer,
  taskSpaceOf,
  writePairTokens,
} from "@polymoe/data";
import { decodeInBatches } from "@polymoe/eval";
import type { Transformer } from "@polymoe/model";
import { Rng } from "@polymoe/routers";
import { writeFileAtomic } from "@polymoe/train";

import { DistillError } from "./errors.js";

export const SEQKD_FORMAT = "polymoe-seqkd";

/** Everything the distilled corpus depends on; a different job never reuses another's work. */
export interface SequenceKdJob {
  format: typeof SEQKD_FORMAT;
  version: 1;
  base: { dir: string; fingerprint: string };
  teacher: { dir: string; digest: string };
  beamSize: number;
  lengthPenalty: number;
  maxLenRatio: number;
  maxLenOffset: number;
  /** Sentences decoded together (token-routed teachers route per batch: part of the identity). */
  batchSize: number;
  /** Source tokens the teacher reads, tag and </s> included (as the trainer truncates them). */
  maxSourceLength: number;
  /** 0 = every training pair; else a seeded sample of this many pairs per language. */
  maxPairsPerLanguage: number;
  seed: number;
  /** Sentences per resumable unit of work. */
  chunkSize: number;
}

export interface SequenceKdOptions {
  /** The teacher, or a function loading it on first need (a finished corpus never loads it). */
  teacher: Transformer | (() => Transformer);
  /** The teacher checkpoint and teacherDigest() of it (provenance and identity). */
  teacherInfo: { dir: string; digest: string };
  /** The corpus whose training sources are translated. */
  corpus: Corpus;
  /** Output corpus directory. */
  out: string;
  beamSize: number;
  lengthPenalty?: number;
  maxLenRatio?: number;
  maxLenOffset?: number;
  batchSize: number;
  maxSourceLength: number;
  maxPairsPerLanguage?: number;
  seed?: number;
  chunkSize?: number;
  progress?: ProgressSink;
  /** Called after each chunk is written, with chunks done and total (tests interrupt here). */
  onChunk?: (done: number, total: number) => void;
}

export interface DirectionReport {
  pairs: number;
  /** Tokens of the teacher's outputs. */
  outputTokens: number;
  /** Outputs the teacher ended at once (empty translations). */
  empty: number;
}

export interface SequenceKdResult {
  dir: string;
  /** True when a finished corpus of the same job was found and nothing was decoded. */
  reused: boolean;
  /** Sentences decoded by this call. */
  decoded: number;
  /** Chunks found already done (resumed work). */
  resumedChunks: number;
  directions: Record<string, DirectionReport>;
  fingerprint: string;
  seconds: number;
}

/** Sentences of `n` pairs to translate: all, or a seeded sample of `max` (ascending). */
export function selectPairs(n: number, max: number, seed: number, lang: string): Int32Array {
  if (max <= 0 || n <= max) return Int32Array.from({ length: n }, (_, i) => i);
  let h = seed >>> 0;
  for (let i = 0; i < lang.length; i++) h = Math.imul(h ^ lang.charCodeAt(i), 16777619) >>> 0;
  const rng = new Rng(h);
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < max; i++) {
    const j = i + Math.floor(rng.next() * (n - i));
    const t = idx[i] as number;
    idx[i] = idx[j] as number;
    idx[j] = t;
  }
  return idx.slice(0, max).sort();
}

const CHUNK_MAGIC = 0x504d5351; // "PMSQ"

function encodeChunk(outputs: readonly Int32Array[]): Uint8Array {
  const total = outputs.reduce((s, o) => s + o.length, 0);
  const buf = new Uint8Array(16 + 4 * (outputs.length + 1) + 4 * total);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, CHUNK_MAGIC, false);
  dv.setUint32(4, 1, true);
  dv.setUint32(8, outputs.length, true);
  const offsets = new Uint32Array(buf.buffer, 16, outputs.length + 1);
  const ids = new Uint32Array(buf.buffer, 16 + 4 * (outputs.length + 1), total);
  let off = 0;
  outputs.forEach((o, i) => {
    offsets[i] = off;
    ids.set(o, off);
    off += o.length;
  });
  offsets[outputs.length] = off;
  return buf;
}

function decodeChunk(file: string, expected: number): Int32Array[] {
  const raw = readFileSync(file);
  const buf = new Uint8Array(raw.length);
  buf.set(raw);
  const dv = new DataView(buf.buffer);
  const bad = (why: string) =>
    new DistillError("CACHE_CORRUPT", `${file}: ${why}; delete it and it is decoded again`);
  if (buf.length < 16 || dv.getUint32(0, false) !== CHUNK_MAGIC) throw bad("not a distillation chunk");
  const n = dv.getUint32(8, true);
  if (n !== expected) throw bad(`${n} sentences, expected ${expected}`);
  if (buf.length < 16 + 4 * (n + 1)) throw bad("truncated");
  const offsets = new Uint32Array(buf.buffer, 16, n + 1);
  const total = offsets[n] as number;
  if (buf.length !== 16 + 4 * (n + 1) + 4 * total) throw bad("truncated");
  const ids = new Uint32Array(buf.buffer, 16 + 4 * (n + 1), total);
  return Array.from({ length: n }, (_, i) =>
    Int32Array.from(ids.subarray(offsets[i] as number, offsets[i + 1] as number)),
  );
}

/** The teacher's outputs for `sources` translated into `tgtLang`, in input order. */
function translateIds(
  teacher: Transformer,
  tok: Tokenizer,
  space: TaskSpace,
  sources: readonly ArrayLike<number>[],
  srcLang: string,
  tgtLang: string,
  job: SequenceKdJob,
  tick: (n: number) => void,
): Int32Array[] {
  const tag = tok.langTag(tgtLang);
  const body = Math.max(0, job.maxSourceLength - 2);
  const encoded = sources.map((s) => {
    const n = Math.min(s.length, body);
    const e = new Int32Array(n + 2);
    e[0] = tag;
    for (let i = 0; i < n; i++) e[i + 1] = s[i] as number;
    e[n + 1] = tok.eosId;
    return e;
  });
  const hyps = decodeInBatches(teacher, encoded, {
    batchSize: job.batchSize,
    lang: space.languages.indexOf(tgtLang),
    pair: space.pairs.indexOf(`${srcLang}-${tgtLang}`),
    padId: tok.padId,
    decode: {
      bos: tok.bosId,
      eos: tok.eosId,
      beamSize: job.beamSize,
      lengthPenalty: job.lengthPenalty,
      maxLenRatio: job.maxLenRatio,
      maxLenOffset: job.maxLenOffset,
    },
    onBatch: tick,
  });
  return hyps.map((h) => h.tokens);
}

function linkOrCopy(from: string, to: string): void {
  if (existsSync(to)) return;
  mkdirSync(path.dirname(to), { recursive: true });
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
}

const slice = (ids: PairTokens["enIds"], off: Uint32Array, i: number) =>
  ids.subarray(off[i] as number, off[i + 1] as number);

function pairTokens(en: readonly ArrayLike<number>[], xx: readonly ArrayLike<number>[]): PairTokens {
  const cat = (seqs: readonly ArrayLike<number>[]) => {
    const offsets = new Uint32Array(seqs.length + 1);
    let n = 0;
    seqs.forEach((s, i) => {
      offsets[i] = n;
      n += s.length;
    });
    offsets[seqs.length] = n;
    const ids = new Uint32Array(n);
    seqs.forEach((s, i) => {
      ids.set(s, offsets[i] as number);
    });
    return { offsets, ids };
  };
  const e = cat(en);
  const x = cat(xx);
  return { n: en.length, enOffsets: e.offsets, enIds: e.ids, xxOffsets: x.offsets, xxIds: x.ids };
}

function jobDiff(a: SequenceKdJob, b: SequenceKdJob): string[] {
  const out: string[] = [];
  for (const k of Object.keys(b) as (keyof SequenceKdJob)[]) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k]))
      out.push(`${k} ${JSON.stringify(a[k])} (now ${JSON.stringify(b[k])})`);
  }
  return out;
}

/**
 * Builds (or resumes, or reuses) the sequence-level distilled corpus at `opts.out`; see the
 * file comment. Deterministic for a seed.
 */
export async function generateSequenceKdCorpus(opts: SequenceKdOptions): Promise<SequenceKdResult> {
  const start = performance.now();
  const base = opts.corpus;
  const job: SequenceKdJob = {
    format: SEQKD_FORMAT,
    version: 1,
    base: { dir: path.resolve(base.dir), fingerprint: base.manifest.fingerprint },
    teacher: { dir: path.resolve(opts.teacherInfo.dir), digest: opts.teacherInfo.digest },
    beamSize: opts.beamSize,
    lengthPenalty: opts.lengthPenalty ?? 1,
    maxLenRatio: opts.maxLenRatio ?? 1.5,
    maxLenOffset: opts.maxLenOffset ?? 10,
    batchSize: opts.batchSize,
    maxSourceLength: opts.maxSourceLength,
    maxPairsPerLanguage: opts.maxPairsPerLanguage ?? 0,
    seed: opts.seed ?? 1,
    chunkSize: opts.chunkSize ?? 512,
  };
  for (const [k, v, min] of [
    ["beamSize", job.beamSize, 1],
    ["batchSize", job.batchSize, 1],
    ["maxSourceLength", job.maxSourceLength, 2],
    ["chunkSize", job.chunkSize, 1],
    ["maxPairsPerLanguage", job.maxPairsPerLanguage, 0],
  ] as const) {
    if (!Number.isInteger(v) || v < min)
      throw new DistillError(
        "INVALID_ARGUMENT",
        `sequence-level distillation: ${k} must be an integer >= ${min}, got ${v}`,
      );
  }
  const out = opts.out;
  if (path.resolve(out) === job.base.dir) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `the distilled corpus cannot be written over its base corpus ${base.dir}`,
    );
  }
  const progress = opts.progress ?? silentProgress;
  const infoFile = path.join(out, "seqkd.json");
  // A finished corpus of this job: reuse it.
  if (existsSync(path.join(out, "manifest.json")) && existsSync(infoFile)) {
    const done = JSON.parse(readFileSync(infoFile, "utf8")) as {
      job: SequenceKdJob;
      result: SequenceKdResult;
    };
    const diff = jobDiff(done.job, job);
    if (diff.length > 0) {
      throw new DistillError(
        "CACHE_MISMATCH",
        `${out} holds a distilled corpus made with ${diff.join(", ")}; use another output directory or delete ${out}`,
      );
    }
    return {
      ...done.result,
      reused: true,
      decoded: 0,
      resumedChunks: 0,
      seconds: (performance.now() - start) / 1000,
    };
  }
  const work = path.join(out, "work");
  const jobFile = path.join(work, "job.json");
  if (existsSync(jobFile)) {
    const diff = jobDiff(JSON.parse(readFileSync(jobFile, "utf8")) as SequenceKdJob, job);
    if (diff.length > 0) {
      throw new DistillError(
        "CACHE_MISMATCH",
        `${out} holds unfinished work made with ${diff.join(", ")}; use another output directory or delete ${out}`,
      );
    }
  } else {
    mkdirSync(work, { recursive: true });
    writeFileAtomic(jobFile, [Buffer.from(`${JSON.stringify(job, null, 2)}\n`)]);
  }

  const data = await loadTrainingData(base);
  const tok = data.tokenizer;
  const space = taskSpaceOf(base.languages);
  // Units of work: (language, direction, chunk).
  type Unit = { lang: string; src: string; tgt: string; chunk: number; sel: Int32Array; file: string };
  const units: Unit[] = [];
  const selections = new Map<string, Int32Array>();
  for (const lang of base.languages.slice(1)) {
    const p = data.pairs.get(lang) as PairTokens;
    const sel = selectPairs(p.n, job.maxPairsPerLanguage, job.seed, lang);
    selections.set(lang, sel);
    for (const [src, tgt] of [
      ["en", lang],
      [lang, "en"],
    ] as const) {
      for (let c = 0; c * job.chunkSize < sel.length; c++) {
        units.push({
          lang,
          src,
          tgt,
          chunk: c,
          sel: sel.subarray(c * job.chunkSize, (c + 1) * job.chunkSize),
          file: path.join(work, `${src}-${tgt}.${String(c).padStart(6, "0")}.bin`),
        });
      }
    }
  }
  const total = units.reduce((s, u) => s + u.sel.length, 0);
  const todo = units.filter((u) => !existsSync(u.file));
  const resumedChunks = units.length - todo.length;
  let teacher: Transformer | undefined = typeof opts.teacher === "function" ? undefined : opts.teacher;
  let decoded = 0;
  if (todo.length > 0) {
    if (!teacher) teacher = (opts.teacher as () => Transformer)();
    const task = progress.start(`sequence-level KD: teacher beam ${job.beamSize}`, total, "sents");
    if (resumedChunks > 0) {
      const already = total - todo.reduce((s, u) => s + u.sel.length, 0);
      progress.log(
        `resuming: ${resumedChunks} of ${units.length} chunks (${already} sentences) already decoded`,
      );
      task.tick(already);
    }
    let chunksDone = resumedChunks;
    for (const u of todo) {
      const p = data.pairs.get(u.lang) as PairTokens;
      const sources = Array.from(u.sel, (i) =>
        u.src === "en" ? slice(p.enIds, p.enOffsets, i) : slice(p.xxIds, p.xxOffsets, i),
      );
      const outputs = translateIds(teacher, tok, space, sources, u.src, u.tgt, job, (n) =>
        task.tick(n, `${u.src}-${u.tgt}`),
      );
      writeFileAtomic(u.file, [encodeChunk(outputs)]);
      decoded += outputs.length;
      chunksDone++;
      opts.onChunk?.(chunksDone, units.length);
    }
    task.done(`${decoded} sentences decoded`);
  }
  if (typeof opts.teacher === "function" && teacher) teacher.dispose();

  // Assemble: directed token files, readable text, the base corpus's files, then the manifest.
  const directedTokens: NonNullable<CorpusManifest["directedTokens"]> = {};
  const directions: Record<string, DirectionReport> = {};
  mkdirSync(path.join(out, "seqkd"), { recursive: true });
  const hash = createHash("sha256").update(`${base.manifest.fingerprint}\n${job.teacher.digest}\n`);
  hash.update(JSON.stringify({ ...job, base: job.base.fingerprint, teacher: job.teacher.digest }));
  for (const lang of base.languages.slice(1)) {
    const p = data.pairs.get(lang) as PairTokens;
    const sel = selections.get(lang) as Int32Array;
    for (const [src, tgt] of [
      ["en", lang],
      [lang, "en"],
    ] as const) {
      const name = `${src}-${tgt}`;
      const outputs = units
        .filter((u) => u.src === src && u.tgt === tgt)
        .flatMap((u) => decodeChunk(u.file, u.sel.length));
      const en = Array.from(sel, (i) => slice(p.enIds, p.enOffsets, i));
      const xx = Array.from(sel, (i) => slice(p.xxIds, p.xxOffsets, i));
      const tokens = src === "en" ? pairTokens(en, outputs) : pairTokens(outputs, xx);
      const file = `tokens/directed/${name}.bin`;
      await writePairTokens(path.join(out, file), tokens, tok.vocabSize);
      hash.update(readFileSync(path.join(out, file)));
      directedTokens[name] = {
        file,
        pairs: tokens.n,
        enTokens: tokens.enIds.length,
        xxTokens: tokens.xxIds.length,
      };
      directions[name] = {
        pairs: tokens.n,
        outputTokens: outputs.reduce((s, o) => s + o.length, 0),
        empty: outputs.filter((o) => o.length === 0).length,
      };
      const sources = src === "en" ? en : xx;
      const lines = outputs.map((o, i) =>
        `${tok.decode(sources[i] as ArrayLike<number>)}\t${tok.decode(o)}`.replace(/\n/g, " "),
      );
      writeFileAtomic(path.join(out, "seqkd", `${name}.tsv`), [
        Buffer.from(lines.length ? `${lines.join("\n")}\n` : ""),
      ]);
    }
  }
  const m = base.manifest;
  linkOrCopy(path.join(base.dir, m.tokenizer.file), path.join(out, m.tokenizer.file));
  for (const files of Object.values(m.splits))
    for (const f of Object.values(files)) linkOrCopy(path.join(base.dir, f.file), path.join(out, f.file));
  for (const t of Object.values(m.tokens)) linkOrCopy(path.join(base.dir, t.file), path.join(out, t.file));
  const fingerprint = `seqkd-${hash.digest("hex").slice(0, 24)}`;
  const manifest: CorpusManifest = {
    ...m,
    createdAt: new Date().toISOString(),
    directedTokens,
    fingerprint,
    warnings: [
      ...m.warnings,
      `sequence-level distillation of ${base.dir}: translation targets are the beam-${job.beamSize} outputs of the teacher ${job.teacher.dir}` +
        (job.maxPairsPerLanguage > 0
          ? ` on at most ${job.maxPairsPerLanguage} pairs per language (seed ${job.seed})`
          : ""),
    ],
  };
  const result: SequenceKdResult = {
    dir: out,
    reused: false,
    decoded,
    resumedChunks,
    directions,
    fingerprint,
    seconds: (performance.now() - start) / 1000,
  };
  writeFileAtomic(infoFile, [Buffer.from(`${JSON.stringify({ job, result }, null, 2)}\n`)]);
  writeFileAtomic(path.join(out, "manifest.json"), [Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)]);
  rmSync(work, { recursive: true, force: true });
  return result;
}
