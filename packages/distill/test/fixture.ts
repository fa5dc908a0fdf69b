import { mkdtempSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import {
  type Corpus,
  openCorpus,
  saveTokenizer,
  type Tokenizer,
  trainingDataFromPairs,
  trainTokenizer,
  WordCounter,
  writePairTokens,
} from "@polymoe/data";
import { type ModelConfigInput, Transformer } from "@polymoe/model";
import { type BatchSource, CHECKPOINT_FORMAT, type CheckpointState, saveCheckpoint } from "@polymoe/train";
import * as tf from "@tensorflow/tfjs-core";

import type { KeyedBatch } from "../src/index.js";
import { uniq } from "./helpers.js";

export const tempDir = (prefix = "polymoe-distill-") => mkdtempSync(path.join(tmpdir(), prefix));

export const VOCAB = 24;
const BOS = 1;
const EOS = 2;

/**
 * A deterministic multitask stream of keyed batches (three "languages" that copy, reverse or
 * shift the source), variable lengths with padding. Its state is the number of batches drawn.
 */
export class KeyedSource implements BatchSource<KeyedBatch> {
  position = 0;
  constructor(
    readonly batch = 6,
    readonly maxLen = 6,
    readonly seed = 1,
  ) {}

  make(pos: number): KeyedBatch {
    let s = (this.seed * 7919 + pos * 104729) >>> 0 || 1;
    const rnd = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 4294967296;
    };
    const B = this.batch;
    const S = this.maxLen + 2;
    const T = this.maxLen + 1;
    const srcMask = new Float32Array(B * S);
    const tgtMask = new Float32Array(B * T);
    const b: KeyedBatch = {
      step: pos,
      epoch: 0,
      size: B,
      srcLen: S,
      tgtLen: T,
      srcIds: new Int32Array(B * S),
      srcMask,
      tgtInIds: new Int32Array(B * T),
      tgtOutIds: new Int32Array(B * T),
      tgtMask,
      targetLangIds: new Int32Array(B),
      pairIds: new Int32Array(B),
      taskTypeIds: new Int32Array(B),
      srcTokens: 0,
      tgtTokens: 0,
    };
    for (let i = 0; i < B; i++) {
      const lang = Math.floor(rnd() * 3);
      const len = 2 + Math.floor(rnd() * (this.maxLen - 2));
      const toks = Array.from({ length: len }, () => 6 + Math.floor(rnd() * (VOCAB - 7)));
      const out = lang === 0 ? toks : lang === 1 ? toks.slice().reverse() : toks.map((t) => t + 1);
      b.targetLangIds[i] = lang;
      b.pairIds[i] = lang;
      b.srcIds[i * S] = 3 + lang;
      for (let j = 0; j < len; j++) b.srcIds[i * S + 1 + j] = toks[j] as number;
      b.srcIds[i * S + len + 1] = EOS;
      for (let j = 0; j <= len + 1; j++) srcMask[i * S + j] = 1;
      b.tgtInIds[i * T] = BOS;
      for (let j = 0; j < len; j++) {
        b.tgtInIds[i * T + j + 1] = out[j] as number;
        b.tgtOutIds[i * T + j] = out[j] as number;
      }
      b.tgtOutIds[i * T + len] = EOS;
      for (let j = 0; j <= len; j++) tgtMask[i * T + j] = 1;
      b.srcTokens += len + 2;
      b.tgtTokens += len + 1;
    }
    return b;
  }

  next(): IteratorResult<KeyedBatch> {
    return { done: false, value: this.make(this.position++) };
  }

  state(): { position: number } {
    return { position: this.position };
  }

  restore(state: { position: number }): void {
    this.position = state.position;
  }
}

export const tinyDense: ModelConfigInput = {
  vocabSize: VOCAB,
  dModel: 16,
  heads: 2,
  dFF: 24,
  encoderLayers: 2,
  decoderLayers: 2,
  maxLength: 16,
  dropout: 0,
};

/** A token-routed MoE teacher (both stacks). */
export const tinyTokenMoe: ModelConfigInput = {
  ...tinyDense,
  moe: {
    encoder: { numExperts: 4, dFF: 12, router: { type: "topk", k: 2, capacityFactor: 1.5 } },
    decoder: { numExperts: 4, dFF: 12, router: { type: "topk", k: 2, capacityFactor: 1.5 } },
  },
};

/** A task-routed MoE (both stacks route by target language). */
export const tinyTaskMoe: ModelConfigInput = {
  ...tinyDense,
  moe: {
    encoder: { numExperts: 4, dFF: 12, router: { type: "task", k: 2, numTasks: 3 } },
    decoder: { numExperts: 4, dFF: 12, router: { type: "task", k: 2, numTasks: 3 } },
  },
};

/** Gives a random model's routers spread-out gates and its biases some values. */
export function spreadRouters(model: Transformer, seed = 11): void {
  tf.tidy(() => {
    for (const [k, v] of model.variables()) {
      if (k.endsWith("router.gate") || k.endsWith("router.taskEmbedding"))
        v.assign(tf.randomNormal(v.shape, 0, 1, "float32", seed));
      else if (k.endsWith(".b") || k.endsWith(".b1") || k.endsWith(".b2"))
        v.assign(tf.randomNormal(v.shape, 0, 0.2, "float32", seed + 1));
    }
  });
}

/** Saves `model` as a checkpoint (state.json with its config, optionally a task space) and returns the directory. */
export function saveModel(
  model: Transformer,
  extra: Partial<CheckpointState> & Record<string, unknown> = {},
): string {
  return saveCheckpoint(
    tempDir("polymoe-teacher-"),
    model,
    null,
    {
      format: CHECKPOINT_FORMAT,
      version: 1,
      step: 3,
      epoch: 0,
      config: {},
      model: model.config,
      optimizer: null,
      data: null,
      rng: [],
      time: new Date().toISOString(),
      ...extra,
    } as CheckpointState,
    { best: false, keepLast: 0 },
  );
}

/** A randomly initialised teacher of `config`, saved; returns the model and its checkpoint. */
export function makeTeacher(config: ModelConfigInput, extra: Record<string, unknown> = {}) {
  const model = new Transformer(config, { seed: 5, namespace: uniq("teacherFixture") });
  spreadRouters(model);
  return { model, dir: saveModel(model, extra) };
}

const EN = ["open", "the", "file", "save", "all", "new", "window", "close", "print", "page", "now", "menu"];
const FR = [
  "ouvrir",
  "le",
  "fichier",
  "enregistrer",
  "tout",
  "nouvelle",
  "fenêtre",
  "fermer",
  "imprimer",
  "page",
  "maintenant",
  "menu",
];
const DE = [
  "öffnen",
  "die",
  "datei",
  "speichern",
  "alle",
  "neues",
  "fenster",
  "schließen",
  "drucken",
  "seite",
  "jetzt",
  "menü",
];

/** Sentence i of a language: 3..6 words picked deterministically. */
const sentence = (words: string[], i: number) =>
  Array.from({ length: 3 + (i % 4) }, (_, j) => words[(i * 7 + j * 5) % words.length]).join(" ");

/**
 * A tiny prepared corpus on disk (en, de, fr; `n` training pairs each, a dev split), in
 * @polymoe/data's layout: manifest, tokenizer.json, token files, split files.
 */
export async function makeCorpus(n = 10): Promise<{ corpus: Corpus; tokenizer: Tokenizer }> {
  const dir = tempDir("polymoe-corpus-");
  const byLang = new Map<string, Array<[string, string]>>();
  const words = new WordCounter();
  for (const [lang, vocab] of [
    ["de", DE],
    ["fr", FR],
  ] as const) {
    const rows: Array<[string, string]> = Array.from({ length: n }, (_, i) => [
      sentence(EN, i),
      sentence(vocab, i),
    ]);
    byLang.set(lang, rows);
    for (const [e, x] of rows) {
      words.add(e);
      words.add(x);
    }
  }
  const tokenizer = trainTokenizer(words, { vocabSize: 320, languages: ["en", "de", "fr"] });
  await saveTokenizer(tokenizer, path.join(dir, "tokenizer.json"));
  const data = trainingDataFromPairs(tokenizer, byLang);
  const tokens: Record<string, { file: string; pairs: number; enTokens: number; xxTokens: number }> = {};
  const splits: Record<string, Record<string, { file: string; pairs: number }>> = { train: {}, dev: {} };
  for (const [lang, p] of data.pairs) {
    const file = `tokens/en-${lang}.bin`;
    await writePairTokens(path.join(dir, file), p, tokenizer.vocabSize);
    tokens[`en-${lang}`] = { file, pairs: p.n, enTokens: p.enIds.length, xxTokens: p.xxIds.length };
    const rows = byLang.get(lang) as Array<[string, string]>;
    await writeFile(path.join(dir, `train-en-${lang}.tsv`), `${rows.map((r) => r.join("\t")).join("\n")}\n`);
    (splits.train as Record<string, { file: string; pairs: number }>)[`en-${lang}`] = {
      file: `train-en-${lang}.tsv`,
      pairs: n,
    };
    await writeFile(
      path.join(dir, `dev-en-${lang}.tsv`),
      `${rows
        .slice(0, 2)
        .map((r) => r.join("\t"))
        .join("\n")}\n`,
    );
    (splits.dev as Record<string, { file: string; pairs: number }>)[`en-${lang}`] = {
      file: `dev-en-${lang}.tsv`,
      pairs: 2,
    };
  }
  const manifest = {
    format: "polymoe-corpus",
    version: 1,
    createdAt: new Date().toISOString(),
    config: {},
    languages: ["en", "de", "fr"],
    splits,
    tokenizer: {
      file: "tokenizer.json",
      vocabSize: tokenizer.vocabSize,
      trainedOnSentences: 0,
      languageSample: {},
    },
    tokens,
    languageStats: {},
    skipped: {},
    heldOut: { testSentences: 0, devSentences: 2, testMinCoverage: 0, evalSetSentences: 0 },
    sources: [],
    warnings: [],
    fingerprint: data.fingerprint,
  };
  await writeFile(path.join(dir, "manifest.json"), JSON.stringify(manifest, null, 2));
  return { corpus: await openCorpus(dir), tokenizer };
}
