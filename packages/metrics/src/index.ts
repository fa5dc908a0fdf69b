// @polymoe/metrics: BLEU, chrF and chrF++ identical to sacreBLEU 2.x.
export {
  type BleuScore,
  type BleuStatistics,
  computeBleu,
  corpusBleu,
  sentenceBleu,
} from "./bleu.js";
export { type ChrfScore, chrfWords, computeChrf, corpusChrf, sentenceChrf } from "./chrf.js";
export {
  type BleuConfig,
  type BleuOptions,
  type ChrfConfig,
  type ChrfOptions,
  resolveBleuConfig,
  resolveChrfConfig,
  SMOOTH_DEFAULTS,
  SMOOTH_METHODS,
  type SmoothMethod,
} from "./config.js";
export type { ReferenceCount, ReferenceStreams } from "./corpus.js";
export { MetricsError, type MetricsErrorCode } from "./errors.js";
export { formatFixed, roundScore } from "./format.js";
export { type FormatScoreOptions, formatScore } from "./report.js";
export {
  formatSignature,
  METRICS_VERSION,
  SACREBLEU_COMPAT_VERSION,
  type Signature,
  type SignatureKey,
} from "./signature.js";
export { lower, rstrip, splitWhitespace } from "./text.js";
export {
  getTokenizer,
  isTokenizerName,
  TOKENIZER_NAMES,
  type Tokenizer,
  type TokenizerName,
  tokenize,
} from "./tokenizers/index.js";
