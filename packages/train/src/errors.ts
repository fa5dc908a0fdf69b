/** Discriminates the ways training can stop or refuse. */
export type TrainErrorCode =
  | "INVALID_CONFIG"
  | "ARCHITECTURE_MISMATCH"
  | "CHECKPOINT_CORRUPT"
  | "CHECKPOINT_MISSING"
  | "NON_FINITE"
  | "INVALID_ARGUMENT";

/** The one error class of @polymoe/train. */
export class TrainError extends Error {
  override readonly name = "TrainError";
  constructor(
    readonly code: TrainErrorCode,
    message: string,
  ) {
    super(message);
  }
}
