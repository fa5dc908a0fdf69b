import { type ParseArgsConfig, parseArgs } from "node:util";

import { BACKEND_CHOICES, type BackendChoice, useBackend } from "@polymoe/kernels";

export type Flags = Record<string, string | boolean | undefined>;

/**
 * A subcommand's flags (`--help`/`-h` added), or the exit code to return at
 * once: 0 after printing `usage` for --help, 2 after one line naming a flag
 * that is unknown or malformed.
 */
export function parseFlags(
  cmd: string,
  usage: string,
  argv: string[],
  options: NonNullable<ParseArgsConfig["options"]>,
): Flags | number {
  let values: Flags;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean", short: "h", default: false } },
      strict: true,
    }));
  } catch (e) {
    console.error(`polymoe ${cmd}: ${(e as Error).message}`);
    return 2;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  return values;
}

/** One line on stderr and the exit code for errors users can fix (PolyMoE error classes carry a `code`). */
export function failure(cmd: string, e: unknown): number {
  const err = e as { code?: string; message?: string; name?: string };
  if (typeof err?.code === "string" && err.name !== "Error") {
    console.error(`polymoe ${cmd}: ${err.message}`);
    return 2;
  }
  throw e;
}

export async function selectBackend(name: string | undefined, log: (l: string) => void): Promise<void> {
  const choice = (name ?? process.env.POLYMOE_BACKEND ?? "auto") as BackendChoice;
  if (!BACKEND_CHOICES.includes(choice))
    throw Object.assign(new Error(`unknown backend '${choice}'; valid: ${BACKEND_CHOICES.join(", ")}`), {
      code: "INVALID_ARGUMENT",
      name: "ArgumentError",
    });
  const r = await useBackend(choice);
  log(`backend: ${r.backend} — ${r.detail}`);
}

export const SPLIT_ALIASES: Record<string, string> = { udhr: "test-udhr", handbook: "test-handbook" };

export function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw Object.assign(new Error(`--${name} must be a positive integer, got '${v}'`), {
      code: "INVALID_ARGUMENT",
      name: "ArgumentError",
    });
  }
  return n;
}
