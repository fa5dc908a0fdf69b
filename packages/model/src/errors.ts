/** Discriminates the ways the model package can refuse its input. */
export type ModelErrorCode = "SHAPE_MISMATCH" | "INVALID_ARGUMENT" | "INVALID_CONFIG";

/** The one error class of @polymoe/model. */
export class ModelError extends Error {
  override readonly name = "ModelError";
  constructor(
    readonly code: ModelErrorCode,
    message: string,
  ) {
    super(message);
  }
}
