import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";

import {
  consoleProgress,
  createBatchIterator,
  loadTrainingData,
  mergeConfig,
  openCorpus,
  PREPARE_PRESETS,
  type PresetName,
  parsePrepareConfig,
  prepareCorpus,
} from "@polymoe/data";
import { encodeEvalBatches } from "@polymoe/eval";
import { useBackend } from "@polymoe/kernels";
import { Transformer } from "@polymoe/model";
import {
  aggregateExperts,
  type DevResult,
  initExpertsFromDense,
  lastCheckpoint,
  Progress,
  Trainer,
  type TrainSummary,
  writeFileAtomic,
} from "@polymoe/train";
import { modelConfigFor, type RunConfig } from "./config.js";

import { devBleu, devLoss, loadDevPairs } from "./dev.js";
import { writeTrainingPlots } from "./plots.js";

export interface RunOptions {
  fresh?: boolean;
  resetOptimizer?: boolean;
  resetDataloader?: boolean;
  /** Where the config came from (for error messages). */
  source?: string;
  log?: (line: string) => void;
}

/** Builds the corpus if needed, the model, the data stream and the trainer, and trains. */
export async function runTraining(config: RunConfig, opts: RunOptions = {}): Promise<TrainSummary> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const backend = await useBackend(config.run.backend);
  log(`backend: ${backend.backend} — ${backend.detail}`);
  if (backend.fallbackReason) log(`(native backend unavailable: ${backend.fallbackReason})`);

  // Data.
  const corpusDir = config.data.corpus;
  if (!existsSync(path.join(corpusDir, "manifest.json")) && config.data.prepare) {
    const preset = config.data.prepare as PresetName;
    log(`corpus ${corpusDir} not found: preparing it (preset ${preset})`);
    const prepare = parsePrepareConfig(
      mergeConfig(PREPARE_PRESETS[preset], { out: corpusDir }),
      "data.prepare",
    );
    await prepareCorpus(prepare, { progress: consoleProgress() });
  }
  const corpus = await openCorpus(corpusDir);
  const data = await loadTrainingData(corpus);
  const iterator = createBatchIterator(data, config.data.loader);
  const space = iterator.taskSpace;
  const modelConfig = modelConfigFor(config, space, data.tokenizer.vocabSize, opts.source);

  // Run directory and the resolved config.
  const runDir = config.run.dir;
  mkdirSync(runDir, { recursive: true });
  const resolved = { ...config, model: modelConfig };
  writeFileAtomic(path.join(runDir, "config.json"), [Buffer.from(`${JSON.stringify(resolved, null, 2)}\n`)]);

  // Model.
  const model = new Transformer(modelConfig, { seed: config.train.seed });
  const resuming = !opts.fresh && lastCheckpoint(runDir) !== null;
  if (!resuming) {
    const init = config.train.init;
    if (init.expertsFromDense) {
      const r = initExpertsFromDense(
        model,
        init.expertsFromDense.checkpoint,
        init.expertsFromDense.noise,
        config.train.seed,
      );
      log(
        `experts from dense ${init.expertsFromDense.checkpoint}: ${r.copied} shared tensors copied, ${r.moeLayers} MoE layers initialised`,
      );
    }
    if (init.aggregateExperts) {
      const r = aggregateExperts(model, init.aggregateExperts.checkpoints, init.aggregateExperts.shared);
      log(
        `aggregated experts from ${init.aggregateExperts.checkpoints.length} checkpoints (${r.copied} shared tensors)`,
      );
    }
  }
  const moe = model.moeLayers();
  log(
    `model: ${model.numParameters().toLocaleString("en-US")} parameters, ${modelConfig.encoderLayers}+${modelConfig.decoderLayers} layers, ` +
      `d=${modelConfig.dModel}, ${moe.length === 0 ? "dense" : moe.map((m) => `${m.name}: ${m.layer.config.numExperts} experts (${m.layer.config.router.type})`).join("; ")}`,
  );
  log(
    `data: ${corpus.languages.length - 1} languages + English, ${iterator.examplesPerEpoch.toLocaleString("en-US")} examples per epoch, ` +
      `${config.data.loader.maxTokens} tokens per batch`,
  );

  // Dev set.
  const pairs = await loadDevPairs(corpus, "dev", config.dev.lossSentencesPerPair);
  const batches = encodeEvalBatches(pairs, data.tokenizer, space, {
    batchSize: config.dev.batchSize,
    maxSourceLength: config.data.loader.maxSourceLength,
    maxTargetLength: config.data.loader.maxTargetLength,
  });
  log(
    `dev: ${pairs.length} directions, ${batches.reduce((s, b) => s + b.size, 0)} sentences for the dev loss`,
  );

  const trainer = new Trainer({
    model,
    config: config.train,
    data: iterator,
    runDir,
    runConfig: resolved,
    dev: (m, rng): DevResult => {
      const loss = devLoss(m, batches, config.train.labelSmoothing, rng);
      if (config.dev.bleuSentencesPerPair === 0) return loss;
      const { bleu, perPair } = devBleu(m, pairs, data.tokenizer, space, {
        perPair: config.dev.bleuSentencesPerPair,
        beamSize: config.dev.beamSize,
        batchSize: config.dev.batchSize,
        maxSourceLength: config.data.loader.maxSourceLength,
      });
      const extra: Record<string, number> = {};
      for (const [pair, b] of Object.entries(perPair)) extra[`bleu:${pair}`] = b;
      return { ...loss, bleu, ...extra };
    },
    progress: new Progress(),
    ...(opts.fresh ? { fresh: true } : {}),
    ...(opts.resetOptimizer ? { resetOptimizer: true } : {}),
    ...(opts.resetDataloader ? { resetDataloader: true } : {}),
  });
  try {
    const summary = await trainer.run();
    const plots = writeTrainingPlots(runDir);
    if (plots.length) log(`plots: ${plots.join(", ")}`);
    return summary;
  } finally {
    trainer.dispose();
    model.dispose();
  }
}
