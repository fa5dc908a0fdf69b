// Strict config parsing shared by every PolyMoE package: zod schemas with
// strict objects, and errors that fit on one line each:
//   model.layers[3].router.k: expected a number >= 1, got 0
//   model.moe.capacityFactr: unknown key (did you mean 'capacityFactor'?)
import type { z } from "zod";

/** A config that failed validation; `issues` holds one line per problem. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly issues: string[],
    readonly source?: string,
  ) {
    super(`${source ? `${source}: ` : ""}invalid config:\n  ${issues.join("\n  ")}`);
  }
}

/** Levenshtein distance (small strings). */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j] as number;
      prev[j] = Math.min(
        (prev[j] as number) + 1,
        (prev[j - 1] as number) + 1,
        diag + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diag = tmp;
    }
  }
  return prev[b.length] as number;
}

/** The candidate closest to `word`, if reasonably close (a likely typo). */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function pathString(prefix: string, path: readonly PropertyKey[]): string {
  let s = prefix;
  for (const p of path) {
    if (typeof p === "number") s += `[${p}]`;
    else s += s ? `.${String(p)}` : String(p);
  }
  return s || "(root)";
}

/** Keys a strict object schema at `path` accepts, for unknown-key suggestions. */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[], input: unknown): string[] {
  // Walk the schema along the path where it is an object (unions: try each option).
  let nodes: z.ZodType[] = [schema];
  let value: unknown = input;
  for (const key of path) {
    const next: z.ZodType[] = [];
    for (const n of nodes)
      for (const s of unwrap(n)) {
        const shape = (s as unknown as { shape?: Record<string, z.ZodType> }).shape;
        const element = (s as unknown as { element?: z.ZodType }).element;
        if (shape && typeof key === "string" && shape[key]) next.push(shape[key]);
        else if (element && typeof key === "number") next.push(element);
      }
    nodes = next;
    value = (value as Record<PropertyKey, unknown> | undefined)?.[key];
  }
  const keys = new Set<string>();
  for (const n of nodes)
    for (const s of unwrap(n)) {
      const shape = (s as unknown as { shape?: Record<string, z.ZodType> }).shape;
      if (!shape) continue;
      // For discriminated unions, prefer the option whose discriminator matches.
      const disc = Object.entries(shape).find(
        ([, v]) => (v as unknown as { value?: unknown }).value !== undefined,
      );
      if (disc && value && typeof value === "object") {
        const want = (disc[1] as unknown as { value?: unknown }).value;
        if ((value as Record<string, unknown>)[disc[0]] !== want) continue;
      }
      for (const k of Object.keys(shape)) keys.add(k);
    }
  return [...keys];
}

/** Strips optional/default/nullable wrappers and expands unions. */
function unwrap(s: z.ZodType): z.ZodType[] {
  const def = (
    s as unknown as { def?: { type?: string; innerType?: z.ZodType; options?: z.ZodType[]; in?: z.ZodType } }
  ).def;
  if (!def) return [s];
  if (
    def.innerType &&
    (def.type === "optional" || def.type === "default" || def.type === "nullable" || def.type === "prefault")
  )
    return unwrap(def.innerType);
  if (def.type === "pipe" && def.in) return unwrap(def.in);
  if (def.type === "union" && def.options) return def.options.flatMap(unwrap);
  return [s];
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return `'${value}'`;
  try {
    const s = JSON.stringify(value);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(value);
  }
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const k of path) v = (v as Record<PropertyKey, unknown> | undefined)?.[k];
  return v;
}

/**
 * Parses `input` with `schema` (use strict objects), returning the typed
 * value or throwing one ConfigError listing every problem on its own line,
 * each naming the field path (prefixed by `prefix`), what was expected, what
 * was given, and for unknown keys the nearest valid key.
 */
export function parseConfig<S extends z.ZodType>(
  schema: S,
  input: unknown,
  { prefix = "", source }: { prefix?: string; source?: string } = {},
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const lines: string[] = [];
  for (const issue of result.error.issues) {
    if (issue.code === "unrecognized_keys") {
      const valid = knownKeys(schema, issue.path, input);
      for (const key of issue.keys) {
        const near = nearest(key, valid);
        lines.push(
          `${pathString(prefix, [...issue.path, key])}: unknown key${
            near ? ` (did you mean '${near}'?)` : valid.length ? ` (valid: ${valid.join(", ")})` : ""
          }`,
        );
      }
      continue;
    }
    const got = valueAt(input, issue.path);
    const message = issue.message.replace(/^Invalid input: /, "");
    if (got === undefined) {
      lines.push(
        `${pathString(prefix, issue.path)}: required (${message.replace(/, received undefined$/, "")})`,
      );
    } else {
      lines.push(`${pathString(prefix, issue.path)}: ${message}, got ${describe(got)}`);
    }
  }
  throw new ConfigError(lines, source);
}

/**
 * Paths of `parsed` whose values the user did not give in `input` (defaults
 * filled in by the schema), with those values: "train.labelSmoothing=0.1".
 */
export function defaultsUsed(input: unknown, parsed: unknown, prefix = ""): string[] {
  const out: string[] = [];
  const isObj = (v: unknown): v is Record<string, unknown> =>
    !!v && typeof v === "object" && !Array.isArray(v);
  if (!isObj(parsed)) return out;
  const given = isObj(input) ? input : {};
  for (const [k, v] of Object.entries(parsed)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (!(k in given)) out.push(`${key}=${JSON.stringify(v)}`);
    else if (isObj(v)) out.push(...defaultsUsed(given[k], v, key));
  }
  return out;
}
