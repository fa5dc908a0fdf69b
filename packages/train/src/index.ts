// @polymoe/train: the training loop and its checkpoints.
export {
  architectureDiff,
  CHECKPOINT_FORMAT,
  type CheckpointLayout,
  type CheckpointState,
  checkpointsDir,
  type LoadOptions,
  lastCheckpoint,
  loadCheckpoint,
  modelBytes,
  modelTensors,
  momentSource,
  openModelTensors,
  type ParallelSaveInput,
  type RankState,
  readRankStates,
  type SaveOptions,
  saveCheckpoint,
  saveParallelCheckpoint,
  type TensorReader,
  TensorSet,
} from "./checkpoint.js";
export { InitConfig, TrainConfig, type TrainConfigInput } from "./config.js";
export { TrainError, type TrainErrorCode } from "./errors.js";
export { aggregateExperts, initExpertsFromDense } from "./init_methods.js";
export { labelSmoothedCrossEntropy, type TokenLoss } from "./loss.js";
export {
  AdamW,
  decayOf,
  globalNorm,
  OptimizerConfig,
  type OptimizerState,
  type TrainOptimizer,
} from "./optimizer.js";
export {
  createParallelRuntime,
  type FlatSegment,
  type MomentPiece,
  type MomentSource,
  type OptimizerCommTimes,
  type ParallelRuntime,
  ShardedOptimizer,
} from "./parallel.js";
export { Progress, type ProgressFields } from "./progress.js";
export {
  encodeSafetensors,
  SafetensorsFile,
  type TensorEntry,
  writeFileAtomic,
  writeSafetensors,
} from "./safetensors.js";
export { LrSchedule, learningRate } from "./schedule.js";
export {
  type BatchSource,
  type CommTimings,
  type DevEvaluator,
  type DevResult,
  evaluateLoss,
  type LossInput,
  type StepMemory,
  type StepResult,
  type StepTimings,
  type TrainBatch,
  Trainer,
  type TrainerOptions,
  type TrainLoss,
  type TrainSummary,
  toModelBatch,
} from "./trainer.js";
