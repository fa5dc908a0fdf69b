/** Discriminates the ways @polymoe/data can refuse work. */
export type DataErrorCode =
  /** A configuration value or key is invalid (the message names the path, the value and the fix). */
  | "INVALID_CONFIG"
  /** A function argument is out of range or of the wrong shape. */
  | "INVALID_ARGUMENT"
  /** A language code is not in PolyMoE's language table (the message lists the nearest codes). */
  | "UNKNOWN_LANGUAGE"
  /** A .mo file is truncated, has a wrong magic number or a table pointing outside the file. */
  | "BAD_MO"
  /** A .po file has a syntax error (file:line). */
  | "BAD_PO"
  /** A catalog declares a charset this Node.js cannot decode. */
  | "UNSUPPORTED_CHARSET"
  /** Bytes are not valid in the declared encoding (file, line or entry). */
  | "INVALID_ENCODING"
  /** A user parallel file is malformed: wrong column count, mismatched Moses line counts, bad JSON. */
  | "BAD_PARALLEL_FILE"
  /** A file that must have content is empty. */
  | "EMPTY_FILE"
  /** A file or directory is missing. */
  | "NOT_FOUND"
  /** apt-get/dpkg-deb are missing or failed (the message says which command and why). */
  | "APT_UNAVAILABLE"
  /** A prepared corpus directory is missing parts or was built by another version. */
  | "BAD_CORPUS"
  /** A tokenizer.json is not one PolyMoE can load. */
  | "BAD_TOKENIZER"
  /** An iterator state cannot be restored here (different data, config, rank or world size). */
  | "STATE_MISMATCH"
  /** Nothing usable was produced (e.g. every source was empty after cleaning). */
  | "NO_DATA";

/** The one error class of @polymoe/data; `code` says which rule was broken. */
export class DataError extends Error {
  override readonly name = "DataError";
  constructor(
    readonly code: DataErrorCode,
    message: string,
  ) {
    super(message);
  }
}
