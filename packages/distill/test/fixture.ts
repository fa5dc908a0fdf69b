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
import { SyntheticSource, VOCAB } from "@polymoe/train/testing";
import * as tf from "@tensorflow/tfjs-core";

import type { KeyedBatch } from "../src/index.js";
import { uniq } from "./helpers.js";

export const tempDir = (prefix = "polymoe-distill-") => mkdtempSync(path.join(tmpdir(), prefix));

export { VOCAB };

/**
 * The trainer's deterministic multitask stream (three "languages" that copy, reverse or shift
 * the source; variable lengths with padding), each batch keyed by its position in the stream.
 */
export class KeyedSource extends SyntheticSource implements BatchSource<KeyedBatch> {
  constructor(batch = 6, maxLen = 6, seed = 1) {
    super(batch, maxLen, seed);
  }

  override make(pos: number): KeyedBatch {
    return { step: pos, ...super.make(pos) };
  }

  override next(): IteratorResult<KeyedBatch> {
    return { done: false, value: this.make(this.position++) };
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
