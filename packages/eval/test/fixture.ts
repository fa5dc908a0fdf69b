import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import {
  saveTokenizer,
  type TaskSpace,
  type Tokenizer,
  taskSpaceOf,
  trainTokenizer,
  WordCounter,
} from "@polymoe/data";
import { setupTestBackends } from "@polymoe/kernels/testing";
import { type ModelConfigInput, Transformer } from "@polymoe/model";
import { CHECKPOINT_FORMAT, saveCheckpoint } from "@polymoe/train";
import * as tf from "@tensorflow/tfjs-core";

export const env = setupTestBackends();

export const SENTENCES = [
  "the cat sits on the mat",
  "a dog runs in the park",
  "open the file menu",
  "save all documents now",
  "print the current page",
  "close this window",
];

export async function tinyTokenizer(): Promise<Tokenizer> {
  const words = new WordCounter();
  for (const s of [...SENTENCES, "die Katze sitzt", "le chat est assis", "Datei öffnen", "ouvrir le fichier"])
    words.add(s);
  return trainTokenizer(words, { vocabSize: 400, languages: ["en", "de", "fr"] });
}

export const space: TaskSpace = taskSpaceOf(["en", "de", "fr"]);

export function hybridConfig(vocabSize: number): ModelConfigInput {
  return {
    vocabSize,
    dModel: 16,
    heads: 2,
    dFF: 24,
    encoderLayers: 2,
    decoderLayers: 2,
    maxLength: 48,
    dropout: 0,
    moe: {
      encoder: { numExperts: 4, router: { type: "topk", k: 2, capacityFactor: 0, evalCapacityFactor: 0 } },
      decoder: { numExperts: 8, taskKey: "target-language", router: { type: "task", k: 2, numTasks: 3 } },
    },
  };
}

let n = 0;
/** A checkpoint directory of a randomly initialised model (routers spread out), with tokenizer.json and the task space. */
export async function makeCheckpoint(
  config: ModelConfigInput,
  tok: Tokenizer,
): Promise<{ dir: string; model: Transformer }> {
  const model = new Transformer(config, { seed: 7, namespace: `fixture${n++}` });
  tf.tidy(() => {
    for (const [k, v] of model.variables()) {
      if (k.endsWith("router.gate") || k.endsWith("router.taskEmbedding"))
        v.assign(tf.randomNormal(v.shape, 0, 1, "float32", 11));
      if (k.endsWith(".b1") || k.endsWith(".b2") || k.endsWith(".b"))
        v.assign(tf.randomNormal(v.shape, 0, 0.1, "float32", 13));
    }
  });
  const run = mkdtempSync(path.join(tmpdir(), "polymoe-eval-"));
  const dir = saveCheckpoint(
    run,
    model,
    null,
    {
      format: CHECKPOINT_FORMAT,
      version: 1,
      step: 0,
      epoch: 0,
      config: {},
      model: model.config,
      optimizer: null,
      data: null,
      rng: [],
      time: new Date().toISOString(),
      taskSpace: space,
    } as never,
    { best: false, keepLast: 0 },
  );
  await saveTokenizer(tok, path.join(dir, "tokenizer.json"));
  return { dir, model };
}
