/** Discriminates the ways @polymoe/app-eval refuses its input. */
export type EvaluationErrorCode =
  /** A flag is unknown, missing, repeated where it may not be, or has an invalid value. */
  | "USAGE"
  /** An input file does not exist or cannot be read. */
  | "FILE_UNREADABLE"
  /** An input file is not valid UTF-8. */
  | "INVALID_UTF8"
  /** Reference and hypothesis files do not have the same number of lines. */
  | "LINE_COUNT_MISMATCH"
  /** An input file has no lines at all. */
  | "EMPTY_INPUT";

/** The one error class of @polymoe/app-eval; `code` says which rule was broken. */
export class EvaluationError extends Error {
  override readonly name = "EvaluationError";
  constructor(
    readonly code: EvaluationErrorCode,
    message: string,
  ) {
    super(message);
  }
}
