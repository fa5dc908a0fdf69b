// @polymoe/distill: knowledge distillation of PolyMoE models into dense students.
//
//   distillationLoss(...)          word-level KD: alpha T^2 KL(teacher_T || student_T) + (1 - alpha) LS-CE
//   DistillSource, kdTrainLoss     the teacher's targets per batch (on the fly or a top-k cache) + the Trainer loss
//   TopKCache                      teacher top-k log-probs on disk, keyed by data-iterator position
//   generateSequenceKdCorpus(...)  sequence-level KD: a corpus of the teacher's beam outputs
//   studentConfig(...)             a dense student the size of an extracted TaskMoE subnetwork
export {
  type BatchDigest,
  batchDigest,
  CACHE_FORMAT,
  type CacheHeader,
  type CacheIdentity,
  type CacheStats,
  TopKCache,
} from "./cache.js";
export {
  CacheConfig,
  DistillConfig,
  type DistillConfigInput,
  parseDistillConfig,
  SequenceDistillConfig,
  WordDistillConfig,
} from "./config.js";
export { DistillError, type DistillErrorCode } from "./errors.js";
export {
  checkKdOptions,
  distillationLoss,
  type FullTeacherTargets,
  type KdLoss,
  type KdLossOptions,
  type TeacherTargets,
  type TopKTail,
  type TopKTeacherTargets,
} from "./kd_loss.js";
export {
  type DirectionReport,
  generateSequenceKdCorpus,
  SEQKD_FORMAT,
  type SequenceKdJob,
  type SequenceKdOptions,
  type SequenceKdResult,
  selectPairs,
} from "./sequence.js";
export {
  type DistillBatch,
  DistillSource,
  type DistillSourceOptions,
  type DistillSourceStats,
  type KdLossMeter,
  type KdTrainLossOptions,
  type KeyedBatch,
  kdTrainLoss,
} from "./source.js";
export { denseParameters, initStudentFromTeacher, type StudentInit, studentConfig } from "./student.js";
export { disposeTargets, fullTargets, teacherLogits, topKTargets } from "./targets.js";
export {
  checkTeacher,
  loadTeacher,
  readTeacherInfo,
  type StudentSide,
  type TeacherInfo,
  teacherDigest,
} from "./teacher.js";
