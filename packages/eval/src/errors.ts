/** Discriminates the ways evaluation can refuse its input. */
export type EvaluationErrorCode =
  | "CHECKPOINT_MISSING"
  | "TOKENIZER_MISMATCH"
  | "UNKNOWN_TASK"
  | "NOT_EXTRACTABLE"
  | "INVALID_ARGUMENT";

/** The one error class of @polymoe/eval. */
export class EvaluationError extends Error {
  override readonly name = "EvaluationError";
  constructor(
    readonly code: EvaluationErrorCode,
    message: string,
  ) {
    super(message);
  }
}
