/** Discriminates the ways @polymoe/metrics can refuse work. */
export type MetricsErrorCode =
  /** A config object failed validation (unknown key, wrong type, value out of range). */
  | "INVALID_CONFIG"
  /** A tokenizer name that is not registered; the message lists the valid ones. */
  | "UNKNOWN_TOKENIZER"
  /** Hypotheses or references are not strings / arrays of strings. */
  | "INVALID_INPUT"
  /** No hypotheses were given: a corpus score is undefined. */
  | "EMPTY_CORPUS"
  /** A reference stream does not have one line per hypothesis. */
  | "LENGTH_MISMATCH"
  /** A segment has no reference at all (every stream holds `null` there), or no stream was given. */
  | "NO_REFERENCES";

/** The one error class of @polymoe/metrics; `code` says which rule was broken. */
export class MetricsError extends Error {
  override readonly name = "MetricsError";
  constructor(
    readonly code: MetricsErrorCode,
    message: string,
  ) {
    super(message);
  }
}
