import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import {
  type Corpus,
  loadTokenizer,
  openCorpus,
  type TaskSpace,
  type Tokenizer,
  taskSpaceOf,
} from "@polymoe/data";
import { Transformer } from "@polymoe/model";
import { type CheckpointState, loadCheckpoint, TensorSet } from "@polymoe/train";

import { EvaluationError } from "./errors.js";

/** What extraction adds to a checkpoint's state.json. */
export interface ExtractionInfo {
  source: string;
  /** The task this subnetwork serves, and its id per task key. */
  task: string;
  /** Per extracted layer: the global expert ids kept and their fixed weights. */
  layers: { layer: string; taskKey: string; taskId: number; experts: number[]; weights: number[] }[];
  /** Parameters and bytes of the source model, for comparison. */
  sourceParameters: number;
  sourceBytes: number;
}

/** A model ready for evaluation, with everything needed to feed it text. */
export interface LoadedModel {
  /** The checkpoint directory loaded. */
  dir: string;
  model: Transformer;
  tokenizer: Tokenizer;
  space: TaskSpace;
  state: CheckpointState & { taskSpace?: TaskSpace; extraction?: ExtractionInfo };
  /** The corpus the model was trained on, when its directory still exists. */
  corpus?: Corpus;
}

/**
 * A run directory (uses checkpoints/checkpoint_best, else checkpoint_last) or a
 * checkpoint directory -> the checkpoint directory.
 */
export function resolveCheckpointDir(dir: string): string {
  if (existsSync(path.join(dir, "state.json"))) return dir;
  for (const link of ["checkpoint_best", "checkpoint_last"]) {
    const c = path.join(dir, "checkpoints", link);
    if (existsSync(path.join(c, "state.json"))) return c;
  }
  throw new EvaluationError(
    "CHECKPOINT_MISSING",
    `${dir} is neither a checkpoint (no state.json) nor a run directory with checkpoints/checkpoint_best or checkpoint_last`,
  );
}

/** A checkpoint's metadata, tokenizer and task space, without its weights. */
export interface CheckpointInfo {
  dir: string;
  state: LoadedModel["state"];
  tokenizer: Tokenizer;
  /** Where the tokenizer was read from. */
  tokenizerFile: string;
  space: TaskSpace;
  corpus?: Corpus;
}

/**
 * Reads a checkpoint's state.json and finds its tokenizer (tokenizer.json
 * beside the checkpoint, else the training corpus's) and task space. Touches
 * no weights.
 */
export async function openCheckpoint(
  dirArg: string,
  opts: { corpus?: string } = {},
): Promise<CheckpointInfo> {
  const dir = resolveCheckpointDir(dirArg);
  const state = JSON.parse(readFileSync(path.join(dir, "state.json"), "utf8")) as LoadedModel["state"];
  if (TensorSet.partFiles(dir, "model").length === 0) {
    throw new EvaluationError(
      "CHECKPOINT_MISSING",
      `${dir}: model.safetensors (or the model.rank<r>.safetensors shards of a parallel run) is missing`,
    );
  }
  const runConfig = (state.config ?? {}) as { data?: { corpus?: string } };
  const corpusDir = opts.corpus ?? runConfig.data?.corpus;
  const corpus =
    corpusDir && existsSync(path.join(corpusDir, "manifest.json")) ? await openCorpus(corpusDir) : undefined;
  const local = path.join(dir, "tokenizer.json");
  let tokenizerFile: string;
  if (existsSync(local)) tokenizerFile = local;
  else if (corpus) tokenizerFile = path.join(corpus.dir, corpus.manifest.tokenizer.file);
  else {
    throw new EvaluationError(
      "CHECKPOINT_MISSING",
      `${dir}: no tokenizer.json beside the checkpoint and the training corpus ${corpusDir ?? "(unknown)"} is gone; pass --corpus DIR`,
    );
  }
  const tokenizer = await loadTokenizer(tokenizerFile);
  const space = state.taskSpace ?? (corpus ? taskSpaceOf(corpus.languages) : undefined);
  if (!space)
    throw new EvaluationError(
      "CHECKPOINT_MISSING",
      `${dir}: the task space is unknown (no corpus); pass --corpus DIR`,
    );
  const modelVocab = (state.model as { vocabSize?: number }).vocabSize;
  if (modelVocab !== tokenizer.vocabSize) {
    throw new EvaluationError(
      "TOKENIZER_MISMATCH",
      `tokenizer mismatch: ${tokenizerFile} has ${tokenizer.vocabSize} tokens, the model's vocabulary is ${modelVocab}; use the corpus the model was trained on (--corpus)`,
    );
  }
  return { dir, state, tokenizer, tokenizerFile, space, ...(corpus ? { corpus } : {}) };
}

/**
 * Loads a checkpoint for evaluation: its model (tfjs variables under
 * `namespace`), tokenizer and task space.
 */
export async function loadModel(
  dirArg: string,
  opts: { namespace?: string; corpus?: string } = {},
): Promise<LoadedModel> {
  const info = await openCheckpoint(dirArg, opts);
  const model = new Transformer(info.state.model as never, {
    seed: 1,
    namespace: opts.namespace ?? `eval${Date.now() % 100000}`,
  });
  loadCheckpoint(info.dir, model, null);
  return {
    dir: info.dir,
    model,
    tokenizer: info.tokenizer,
    space: info.space,
    state: info.state,
    ...(info.corpus ? { corpus: info.corpus } : {}),
  };
}
