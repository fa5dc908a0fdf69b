// @polymoe/app-eval: evaluation commands of the polymoe CLI, and their programmatic forms.
export { EvaluationError, type EvaluationErrorCode } from "./errors.js";
export {
  formatJson,
  formatText,
  JSON_KEYS,
  type MetricResult,
  SCORE_METRICS,
  type ScoreMetric,
  type ScoreSettings,
  scoreFiles,
  scoreSegments,
} from "./score.js";
export { readSegments } from "./text_file.js";
