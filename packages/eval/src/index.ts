// @polymoe/eval: translate with a trained model, score it per language, look at its routing.
export { type EvalPairs, encodeEvalBatches } from "./batches.js";
export { EvaluationError, type EvaluationErrorCode } from "./errors.js";
export {
  type Average,
  type DirectionResult,
  type EvalReport,
  evaluate,
  listAvailableSplits,
  loadSplit,
  summarizeDirections,
} from "./evaluate.js";
export { type ExtractResult, extractionInfo, extractTask, taskIdFor } from "./extract.js";
export {
  type CheckpointInfo,
  type ExtractionInfo,
  type LoadedModel,
  loadModel,
  openCheckpoint,
  resolveCheckpointDir,
} from "./load.js";
export { type PruneResult, pruneExperts, usageTotals } from "./prune.js";
export { reportMarkdown, reportPlots } from "./report.js";
export { bleuTokenizerFor, decodeInBatches, type TranslateOptions, translate } from "./translate.js";
export { expertUsage, type LayerUsage } from "./usage.js";
