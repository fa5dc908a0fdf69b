// `polymoe score`: BLEU, chrF and chrF++ of a hypothesis file against reference
// files, identical to sacreBLEU 2.x. Bad input prints one line and exits with 2.
import { parseArgs } from "node:util";

import {
  isTokenizerName,
  MetricsError,
  SMOOTH_METHODS,
  type SmoothMethod,
  TOKENIZER_NAMES,
} from "@polymoe/metrics";
import { nearest } from "@polymoe/schema";

import { EvaluationError } from "../errors.js";
import { formatJson, formatText, SCORE_METRICS, type ScoreMetric, scoreFiles } from "../score.js";

/** Same shape as the CLI's `Command` (apps/cli/src/registry.ts). */
export interface Command {
  summary: string;
  run(argv: string[]): Promise<number>;
}

const USAGE = `usage: polymoe score --ref FILE [--ref FILE ...] --hyp FILE [options]

Scores a hypothesis file against one or more reference files (one segment per
line, UTF-8) with BLEU, chrF and chrF++, identical to sacreBLEU 2.x.

  --ref FILE            reference file; repeat for several references per segment
  --hyp FILE            hypothesis file, as many lines as each reference file
  --metric LIST         comma-separated, from ${SCORE_METRICS.join(", ")} (default: all three)
  --tokenize NAME       BLEU tokenizer: ${TOKENIZER_NAMES.join(", ")} (default: 13a)
  --lowercase           case-insensitive scores, for every metric
  --smooth-method NAME  BLEU smoothing: ${SMOOTH_METHODS.join(", ")} (default: exp)
  --smooth-value X      the floor (default 0.1) or k (default 1) of floor / add-k
  --width N             decimals of the scores (default: 2)
  --short               abbreviated signatures
  --json                print one JSON object {"bleu":…, "chrf":…, "chrfpp":…}

Text output: one sacreBLEU-style line per metric, then its signature
(NAME|nrefs:…|…|impl:polymoe-metrics-<version>|compat:sacrebleu-<version>).`;

const OPTIONS = {
  ref: { type: "string", multiple: true },
  hyp: { type: "string" },
  metric: { type: "string" },
  tokenize: { type: "string" },
  lowercase: { type: "boolean" },
  "smooth-method": { type: "string" },
  "smooth-value": { type: "string" },
  width: { type: "string" },
  short: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

export const command: Command = {
  summary: "BLEU, chrF and chrF++ of a hypothesis file against references, identical to sacreBLEU 2.x",
  async run(argv) {
    try {
      const { values } = parseFlags(argv);
      if (values.help) {
        console.log(USAGE);
        return 0;
      }
      const refs = values.ref ?? [];
      if (refs.length === 0) throw usage("--ref FILE is required (the reference file; repeat for several)");
      if (values.hyp === undefined) throw usage("--hyp FILE is required (the hypothesis file)");
      const tokenize = values.tokenize ?? "13a";
      if (!isTokenizerName(tokenize)) {
        throw usage(`unknown --tokenize '${tokenize}'; valid tokenizers: ${TOKENIZER_NAMES.join(", ")}`);
      }
      const smoothMethod = (values["smooth-method"] ?? "exp") as SmoothMethod;
      if (!SMOOTH_METHODS.includes(smoothMethod)) {
        throw usage(`unknown --smooth-method '${smoothMethod}'; valid methods: ${SMOOTH_METHODS.join(", ")}`);
      }
      const smoothValue = parseSmoothValue(values["smooth-value"], smoothMethod);
      const width = parseWidth(values.width);
      const metrics = parseMetrics(values.metric);
      const results = scoreFiles(values.hyp, refs, {
        metrics,
        tokenize,
        lowercase: values.lowercase ?? false,
        smoothMethod,
        ...(smoothValue !== undefined ? { smoothValue } : {}),
      });
      console.log(
        values.json
          ? formatJson(results, { width })
          : formatText(results, { width, short: values.short ?? false }),
      );
      return 0;
    } catch (e) {
      if (e instanceof EvaluationError || e instanceof MetricsError) {
        console.error(`polymoe score: ${e.message}`);
        return 2;
      }
      throw e;
    }
  },
};

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  } catch (e) {
    const err = e as Error & { code?: string };
    const quoted = /'([^']+)'/.exec(err.message)?.[1] ?? "";
    if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const near = nearestOption(quoted);
      throw usage(
        `unknown option '${quoted}'${near ? ` (did you mean '${near}'?)` : ""}; valid options: ${validOptions()}`,
      );
    }
    if (err.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      throw usage(`${quoted.split(" ")[0]} needs a value (see polymoe score --help)`);
    }
    if (err.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      throw usage(`unexpected argument '${quoted}'; pass files with --ref FILE and --hyp FILE`);
    }
    throw usage(err.message);
  }
}

function validOptions(): string {
  return Object.keys(OPTIONS)
    .map((k) => `--${k}`)
    .join(", ");
}

function nearestOption(given: string): string | undefined {
  const near = nearest(given.replace(/^-+/, ""), Object.keys(OPTIONS));
  return near === undefined ? undefined : `--${near}`;
}

function parseMetrics(list: string | undefined): ScoreMetric[] {
  if (list === undefined) return [...SCORE_METRICS];
  const out: ScoreMetric[] = [];
  for (const raw of list.split(",")) {
    const name = raw.trim().toLowerCase();
    if (!(SCORE_METRICS as readonly string[]).includes(name)) {
      throw usage(`unknown --metric '${raw.trim()}'; valid metrics: ${SCORE_METRICS.join(", ")}`);
    }
    if (!out.includes(name as ScoreMetric)) out.push(name as ScoreMetric);
  }
  return out;
}

function parseSmoothValue(raw: string | undefined, method: SmoothMethod): number | undefined {
  if (raw === undefined) return undefined;
  if (method !== "floor" && method !== "add-k") {
    throw usage(`--smooth-value applies only to --smooth-method floor or add-k, not '${method}'`);
  }
  const x = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(x) || x <= 0) {
    throw usage(`--smooth-value must be a number > 0, got '${raw}'`);
  }
  return x;
}

function parseWidth(raw: string | undefined): number {
  if (raw === undefined) return 2;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 10) throw usage(`--width must be an integer from 0 to 10, got '${raw}'`);
  return n;
}

function usage(message: string): EvaluationError {
  return new EvaluationError("USAGE", message);
}
