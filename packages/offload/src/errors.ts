/** Discriminates the ways @polymoe/offload can refuse work. */
export type OffloadErrorCode =
  | "INVALID_ARGUMENT"
  | "DIR_UNWRITABLE"
  | "DISK_FULL"
  | "BUDGET_TOO_SMALL"
  | "BUDGET_EXCEEDED"
  | "STATE_MISMATCH"
  | "STORE_CORRUPT";

/** The one error class of @polymoe/offload; `code` says which rule was broken. */
export class OffloadError extends Error {
  override readonly name = "OffloadError";
  constructor(
    readonly code: OffloadErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Bytes as GiB (the unit of hostMemoryGB) with enough digits to act on; small figures add the byte count. */
export function gb(bytes: number): string {
  const x = bytes / 2 ** 30;
  if (x >= 10) return `${x.toFixed(1)} GB`;
  if (x >= 0.01) return `${x.toFixed(3)} GB`;
  return `${x.toPrecision(2)} GB (${Math.round(bytes)} bytes)`;
}

/** A hostMemoryGB value at least `bytes` (rounded up to 3 significant digits), to paste into a config. */
export function gbSetting(bytes: number): number {
  const x = bytes / 2 ** 30;
  const scale = 10 ** (2 - Math.floor(Math.log10(x)));
  return Math.ceil(x * scale) / scale;
}
