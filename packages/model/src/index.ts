// @polymoe/model: PolyMoE's model layers.
export { ModelError, type ModelErrorCode } from "./errors.js";
export { MoeLayerConfig, type MoeLayerConfigInput } from "./moe/config.js";
export { type ExpertExchange, LOCAL_EXCHANGE } from "./moe/exchange.js";
export { BatchedExperts } from "./moe/experts.js";
export { MoeLayer, type MoeLayerInit, type MoeOutput, type ParameterGroups } from "./moe/moe_layer.js";
