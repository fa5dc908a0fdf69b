/** Discriminates the ways routing can refuse its input. */
export type RoutingErrorCode =
  | "SHAPE_MISMATCH"
  | "INVALID_ARGUMENT"
  | "NON_FINITE"
  | "UNKNOWN_ROUTER"
  | "INVALID_CONFIG";

/** The one error class of @polymoe/routers. Messages name the argument, its actual and expected value. */
export class RoutingError extends Error {
  override readonly name = "RoutingError";
  constructor(
    readonly code: RoutingErrorCode,
    message: string,
  ) {
    super(message);
  }
}
