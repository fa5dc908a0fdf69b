// @polymoe/data: multilingual translation data for PolyMoE.
//
//   prepareCorpus(config)      Debian gettext catalogs / UDHR / handbook / user files →
//                              cleaned, leakage-free splits + tokenizer.json + token files
//   openCorpus(dir)            a prepared corpus: manifest, eval sets, training data
//   createBatchIterator(...)   temperature-sampled multitask token-budget batches,
//                              sharded by rank, resumable exactly
//
// Everything else is internal (the exports map blocks deep imports).

export {
  type Batch,
  BatchIterator,
  type BatchIteratorOptions,
  type BatchIteratorState,
  batchDigest,
  createBatchIterator,
  encodeSource,
  type StreamInfo,
} from "./batching/iterator.js";
export { type NoiseOptions, noiseTokens } from "./batching/noise.js";
export { TASK_TYPES, type TaskSpace, type TaskType, taskSpaceOf } from "./batching/streams.js";
// Cleaning
export {
  type CleaningOptions,
  type CleanResult,
  cleanPair,
  DEFAULT_CLEANING,
  englishKey,
  hasFormatSpecifier,
  hasMarkup,
  SKIP_REASONS,
  type SkipReason,
  stripAccelerators,
} from "./clean.js";
export {
  type DataConfig,
  DataConfigSchema,
  FULL_PACKAGES,
  type LoaderConfig,
  type LoaderConfigInput,
  LoaderConfigSchema,
  mergeConfig,
  PREPARE_PRESETS,
  PRESET_NAMES,
  type PrepareConfig,
  type PrepareConfigInput,
  PrepareConfigSchema,
  type PresetName,
  parseDataConfig,
  parseLoaderConfig,
  parsePrepareConfig,
  QUICK_LANGUAGES,
  QUICK_PACKAGES,
  type UserFileSource,
} from "./config.js";
// Corpus
export { type PrepareOptions, prepareCorpus } from "./corpus/build.js";
export type { CorpusManifest, LanguageSummary, SourceReport, SplitFile } from "./corpus/manifest.js";
export {
  type Corpus,
  corpusTokenizer,
  type EvalSet,
  type EvalSetId,
  listEvalSets,
  loadEvalSet,
  loadTrainingData,
  openCorpus,
  type TrainingData,
  trainingDataFromPairs,
} from "./corpus/open.js";
export { formatSummary } from "./corpus/summary.js";
export { type PairTokens, readPairTokens, writePairTokens } from "./corpus/tokens_file.js";
// Errors and config
export { DataError, type DataErrorCode } from "./errors.js";
export { LANGUAGE_CODES, LANGUAGES, type LanguageInfo, languageInfo, localeToLanguage } from "./languages.js";
// Readers
export type { Catalog, CatalogMessage } from "./readers/catalog.js";
export { parseMo } from "./readers/mo.js";
export { type ParallelLine, readJsonl, readMoses, readTsv } from "./readers/parallel.js";
export { type PluralForms, parsePluralForms } from "./readers/plural.js";
export { parsePo } from "./readers/po.js";
export { alignUdhr, parseUdhrHtml, readUdhr, type UdhrAlignment, type UdhrDocument } from "./readers/udhr.js";
// Sampling and batching
export { allocateQuotas, temperatureProbabilities } from "./sampling.js";
// Tokenizer
export {
  type DecodeOptions,
  type HfTokenizerJson,
  langTagToken,
  loadTokenizer,
  SPECIAL_TOKENS,
  saveTokenizer,
  Tokenizer,
} from "./tokenizer/tokenizer.js";
export { type TrainTokenizerOptions, trainTokenizer, WordCounter } from "./tokenizer/train.js";

// Progress reporting
export { consoleProgress, type ProgressSink, type ProgressTask, silentProgress } from "./util/progress.js";
