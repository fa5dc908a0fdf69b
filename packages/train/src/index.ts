// @polymoe/train: the training loop and its checkpoints.
export {
  architectureDiff,
  CHECKPOINT_FORMAT,
  type CheckpointState,
  checkpointsDir,
  type LoadOptions,
  lastCheckpoint,
  loadCheckpoint,
  modelTensors,
  type SaveOptions,
  saveCheckpoint,
} from "./checkpoint.js";
export { InitConfig, TrainConfig, type TrainConfigInput } from "./config.js";
export { TrainError, type TrainErrorCode } from "./errors.js";
export { aggregateExperts, initExpertsFromDense } from "./init_methods.js";
export { labelSmoothedCrossEntropy, type TokenLoss } from "./loss.js";
export { AdamW, globalNorm, OptimizerConfig, type OptimizerState } from "./optimizer.js";
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
  type DevEvaluator,
  type DevResult,
  evaluateLoss,
  type StepResult,
  type StepTimings,
  type TrainBatch,
  Trainer,
  type TrainerOptions,
  type TrainSummary,
  toModelBatch,
} from "./trainer.js";
