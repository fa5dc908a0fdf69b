import { ConfigError, parseConfig } from "@polymoe/schema";
import { z } from "zod";

import { MetricsError } from "./errors.js";
import { TOKENIZER_NAMES } from "./tokenizers/index.js";

/** BLEU smoothing methods (Chen & Cherry, WMT 2014), as sacreBLEU names them. */
export const SMOOTH_METHODS = ["exp", "floor", "add-k", "none"] as const;
export type SmoothMethod = (typeof SMOOTH_METHODS)[number];

/** The value `floor` and `add-k` use when none is given (Chen & Cherry's choices, as in sacreBLEU). */
export const SMOOTH_DEFAULTS: Readonly<Record<"floor" | "add-k", number>> = { floor: 0.1, "add-k": 1 };

const bleuSchema = z
  .strictObject({
    tokenize: z
      .enum(TOKENIZER_NAMES)
      .default("13a")
      .describe("tokenizer applied to hypotheses and references before counting n-grams"),
    lowercase: z.boolean().default(false).describe("lowercase both sides before tokenizing (case:lc)"),
    smoothMethod: z
      .enum(SMOOTH_METHODS)
      .default("exp")
      .describe("how an n-gram order without matches is smoothed: exp (NIST, 1/2^k), floor, add-k, none"),
    smoothValue: z
      .number()
      .positive()
      .finite()
      .optional()
      .describe("the floor (default 0.1) or k (default 1); only for smoothMethod floor and add-k"),
    maxNgramOrder: z.number().int().min(1).max(32).default(4).describe("highest n-gram order (BLEU-4: 4)"),
    effectiveOrder: z
      .boolean()
      .default(false)
      .describe("average only over n-gram orders the hypothesis has (for sentence BLEU)"),
  })
  .superRefine((c, ctx) => {
    if (c.smoothValue !== undefined && c.smoothMethod !== "floor" && c.smoothMethod !== "add-k") {
      ctx.addIssue({
        code: "custom",
        path: ["smoothValue"],
        message: `only used by smoothMethod 'floor' or 'add-k' (smoothMethod is '${c.smoothMethod}'); remove it or change smoothMethod`,
      });
    }
  });

const chrfSchema = z
  .strictObject({
    charOrder: z.number().int().min(0).max(32).default(6).describe("highest character n-gram order"),
    wordOrder: z
      .number()
      .int()
      .min(0)
      .max(32)
      .default(0)
      .describe("highest word n-gram order: 0 for chrF, 2 for chrF++"),
    beta: z
      .number()
      .int()
      .min(0)
      .max(100)
      .default(2)
      .describe("recall weighs beta times as much as precision"),
    lowercase: z.boolean().default(false).describe("lowercase both sides first (case:lc)"),
    whitespace: z.boolean().default(false).describe("keep whitespace inside character n-grams (space:yes)"),
    epsSmoothing: z
      .boolean()
      .default(false)
      .describe(
        "average per-order F-scores with epsilon smoothing (chrF++.py/Moses/NLTK) instead of effective-order precision/recall averaging (eff:no)",
      ),
  })
  .superRefine((c, ctx) => {
    if (c.charOrder + c.wordOrder === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["charOrder"],
        message: "charOrder + wordOrder must be at least 1, or no n-gram would be counted",
      });
    }
  });

/** Options of BLEU, as a caller may give them (every field optional). */
export type BleuOptions = z.input<typeof bleuSchema>;
/** BLEU's resolved configuration. */
export type BleuConfig = z.output<typeof bleuSchema>;
/** Options of chrF/chrF++, as a caller may give them (every field optional). */
export type ChrfOptions = z.input<typeof chrfSchema>;
/** chrF's resolved configuration. */
export type ChrfConfig = z.output<typeof chrfSchema>;

/** Validates BLEU options once, filling defaults; throws `INVALID_CONFIG` naming the field. */
export function resolveBleuConfig(options: BleuOptions = {}): BleuConfig {
  return validate(bleuSchema, options, "BLEU options");
}

/** Validates chrF options once, filling defaults; throws `INVALID_CONFIG` naming the field. */
export function resolveChrfConfig(options: ChrfOptions = {}): ChrfConfig {
  return validate(chrfSchema, options, "chrF options");
}

function validate<T extends z.ZodType>(schema: T, input: unknown, what: string): z.output<T> {
  try {
    return parseConfig(schema, input);
  } catch (e) {
    if (e instanceof ConfigError) throw new MetricsError("INVALID_CONFIG", `${what}: ${e.issues.join("; ")}`);
    throw e;
  }
}
