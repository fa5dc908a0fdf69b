// manifest.json: what a prepared corpus holds. Written last (atomically), so a corpus
// directory with a manifest is complete.

import type { SkipReason } from "../clean.js";
import type { PrepareConfig } from "../config.js";

export const MANIFEST_FORMAT = "polymoe-corpus";
export const MANIFEST_VERSION = 1;

/** Pairs of one split file. */
export interface SplitFile {
  /** Path relative to the corpus directory. */
  file: string;
  pairs: number;
}

export interface LanguageSummary {
  /** Pairs kept after cleaning and dedupe (before splitting). */
  kept: number;
  /** Raw message pairs read. */
  raw: number;
  /** Per-reason drop counts. */
  skipped: Partial<Record<SkipReason, number>>;
  /** Kept pairs by source name. */
  bySource: Record<string, number>;
}

export interface CorpusManifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  createdAt: string;
  /** The resolved prepare config. */
  config: PrepareConfig;
  /** English first, then the target languages in language-table order. */
  languages: string[];
  /** Split name → pair name ("en-fr") → file. Splits: train, dev, test, test-udhr, test-handbook, test-<name>... */
  splits: Record<string, Record<string, SplitFile>>;
  /** Tokenizer file (relative) and its vocabulary size. */
  tokenizer: {
    file: string;
    vocabSize: number;
    trainedOnSentences: number;
    languageSample: Record<string, number>;
  };
  /** Tokenized training pairs: "en-fr" → file (relative), pairs, token counts. */
  tokens: Record<string, { file: string; pairs: number; enTokens: number; xxTokens: number }>;
  /**
   * Optional pairs for one translation direction only ("en-fr" or "fr-en"), in the format
   * of `tokens` (English first): that direction's translation stream reads them instead of
   * the symmetric pairs; the other direction and denoising keep reading `tokens`. Derived
   * corpora use it (sequence-level distillation stores a teacher's outputs this way).
   */
  directedTokens?: Record<string, { file: string; pairs: number; enTokens: number; xxTokens: number }>;
  /** Per-language cleaning statistics (every language seen, selected or not). */
  languageStats: Record<string, LanguageSummary>;
  /** Totals of drops by reason over the selected languages. */
  skipped: Partial<Record<SkipReason, number>>;
  /** Held-out English selection. */
  heldOut: {
    testSentences: number;
    devSentences: number;
    /** Minimum number of languages a test sentence is present in. */
    testMinCoverage: number;
    /** English sentences removed from train because an eval set holds them. */
    evalSetSentences: number;
  };
  /** What each source contributed, and what went wrong with it (counted, never silent). */
  sources: SourceReport[];
  /** Why the run deviated from its config (e.g. apt unavailable → UDHR fallback). */
  warnings: string[];
  /** Hash of everything the batches depend on (token files, tokenizer, languages). */
  fingerprint: string;
}

export interface SourceReport {
  name: string;
  /** Packages/files/documents read. */
  items: number;
  /** Raw pairs produced. */
  pairs: number;
  /** Items that failed, with reasons (first 50). */
  errors: string[];
  errorCount: number;
  /** Locales found but not in the language table or not selected, with catalog counts. */
  skippedLocales?: Record<string, number>;
  /** Debian package name → version, when the source is Debian. */
  packages?: Record<string, string>;
  /** UDHR alignment per language: sections aligned by paragraph / joined / missing. */
  alignment?: Record<
    string,
    {
      document: string;
      sections: number;
      paragraphAligned: number;
      joined: number;
      missing: number;
      pairs: number;
    }
  >;
}
