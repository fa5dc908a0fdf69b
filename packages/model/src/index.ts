// @polymoe/model: PolyMoE's model layers.
export type { KVCache, RowKV } from "./attention.js";
export { ModelConfig, type ModelConfigInput, MoePlacement, moeLayerIndices, TaskKey } from "./config.js";
export { type DecodeOptions, decode, greedyDecode, type Hypothesis, type SourceBatch } from "./decode.js";
export { ModelError, type ModelErrorCode } from "./errors.js";
export { MoeLayerConfig, type MoeLayerConfigInput } from "./moe/config.js";
export {
  type ExchangedTokens,
  type ExpertExchange,
  type ExpertExchangeFactory,
  type ExpertSlicing,
  LOCAL_EXCHANGE,
} from "./moe/exchange.js";
export { BatchedExperts, type ExpertPlacement } from "./moe/experts.js";
export {
  filledSlots,
  MoeLayer,
  type MoeLayerInit,
  type MoeOutput,
  type ParameterGroups,
  packRows,
} from "./moe/moe_layer.js";
export type { ExpertPager, PagedLayerSpec, PagedWeights } from "./moe/pager.js";
export {
  type DecoderState,
  type EncoderMemory,
  type ExpertLayout,
  type ForwardContext,
  type ForwardOutput,
  type ModelBatch,
  type MoeReport,
  Transformer,
  type TransformerInit,
} from "./transformer.js";
