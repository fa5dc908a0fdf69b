/** Discriminates the ways @polymoe/parallel can refuse work. */
export type ParallelErrorCode =
  /** The MPI binding is not built or libmpi is missing; the message says how to fix it. */
  | "MPI_UNAVAILABLE"
  /** A caller-side argument is wrong on this rank (type, length, range). */
  | "INVALID_ARGUMENT"
  /** Ranks disagree about a collective (kind, element type, length, root, counts). */
  | "RANK_MISMATCH"
  /** An impossible (worldSize, ep, tp, experts) combination. */
  | "INVALID_LAYOUT"
  /** A simulated rank waited too long for a peer. */
  | "TIMEOUT"
  /** The transport failed (an MPI error code, a crashed simulated rank). */
  | "COMM_FAILED"
  /** The communicator was freed or MPI finalized. */
  | "COMM_CLOSED"
  /** The launcher could not start or lost the job. */
  | "LAUNCH_FAILED";

/** The one error class of @polymoe/parallel; `code` says which rule was broken. */
export class ParallelError extends Error {
  override readonly name = "ParallelError";
  constructor(
    readonly code: ParallelErrorCode,
    message: string,
  ) {
    super(message);
  }
}
