/** Discriminates the ways distillation can refuse its input. */
export type DistillErrorCode =
  | "INVALID_ARGUMENT"
  | "TEACHER_MISSING"
  | "VOCAB_MISMATCH"
  | "TASK_SPACE_MISMATCH"
  | "CACHE_MISMATCH"
  | "CACHE_CORRUPT"
  | "NOT_DENSE";

/** The one error class of @polymoe/distill. Messages are one line: what, actual vs expected, the fix. */
export class DistillError extends Error {
  override readonly name = "DistillError";
  constructor(
    readonly code: DistillErrorCode,
    message: string,
  ) {
    super(message);
  }
}
