// @polymoe/app-train: the `polymoe train` command.

export { HELP, trainCommand } from "./command.js";
export {
  CONFIG_DIR,
  modelConfigFor,
  RunConfig,
  readConfigFile,
  resolveRunConfig,
  SHIPPED_CONFIGS,
  studentModelConfigFor,
} from "./config.js";
export { type DevPair, devBleu, loadDevPairs } from "./dev.js";
export { deepMerge, parseOverrides } from "./overrides.js";
export { writeTrainingPlots } from "./plots.js";
export { type RunOptions, runTraining } from "./run.js";
export { STUDY_HELP, studyCommand } from "./study/command.js";
export {
  activeFfnWidths,
  baseRunConfig,
  parseStudyConfig,
  readStudyConfig,
  StudyConfig,
  studentRunConfig,
} from "./study/config.js";
export { writeStudyReport } from "./study/report.js";
export { canonicalJson, readDone, runStages, type Stage, stageKey } from "./study/stages.js";
export { runStudy, StudyError, type StudyErrorCode, studyStages } from "./study/study.js";
