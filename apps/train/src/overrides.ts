/**
 * Turns `--a.b.c value` flags into a nested object. Values are parsed as JSON
 * when they are JSON (numbers, booleans, arrays, objects, quoted strings),
 * otherwise kept as strings: `--train.maxSteps 100 --run.dir runs/x`.
 */
export function parseOverrides(flags: readonly string[]): {
  overrides: Record<string, unknown>;
  rest: string[];
} {
  const overrides: Record<string, unknown> = {};
  const rest: string[] = [];
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i] as string;
    const m = /^--([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)+)(?:=(.*))?$/.exec(f);
    if (!m) {
      rest.push(f);
      continue;
    }
    let raw = m[2];
    if (raw === undefined) {
      raw = flags[i + 1];
      if (raw === undefined) throw new Error(`${f} needs a value`);
      i++;
    }
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a bare string
    }
    setPath(overrides, (m[1] as string).split("."), value);
  }
  return { overrides, rest };
}

function setPath(obj: Record<string, unknown>, keys: string[], value: unknown): void {
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof cur[k] !== "object" || cur[k] === null || Array.isArray(cur[k])) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[keys[keys.length - 1] as string] = value;
}

/** Deep merge: later layers win; arrays and scalars replace, objects merge. */
export function deepMerge(...layers: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!layer || typeof layer !== "object") continue;
    for (const [k, v] of Object.entries(layer as Record<string, unknown>)) {
      const prev = out[k];
      out[k] =
        v &&
        typeof v === "object" &&
        !Array.isArray(v) &&
        prev &&
        typeof prev === "object" &&
        !Array.isArray(prev)
          ? deepMerge(prev, v)
          : v;
    }
  }
  return out;
}
