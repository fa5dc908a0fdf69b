/** Discriminates the ways @polymoe/kernels can refuse work. */
export type KernelErrorCode =
  | "ADDON_UNAVAILABLE"
  | "BACKEND_UNAVAILABLE"
  | "INVALID_ARGUMENT"
  | "SHAPE_MISMATCH"
  | "DUPLICATE_REGISTRATION";

/** The one error class of @polymoe/kernels; `code` says which rule was broken. */
export class KernelError extends Error {
  override readonly name = "KernelError";
  constructor(
    readonly code: KernelErrorCode,
    message: string,
  ) {
    super(message);
  }
}
