// @polymoe/offload: ZeRO-Offload / ZeRO-Infinity style memory offload — a
// tiered tensor store (host memory under a budget, then disk) and an Adam
// whose state lives in it.
export {
  type OffloadAdamHyper,
  OffloadedAdamW,
  type OffloadedAdamWOptions,
  type OffloadMemoryPlan,
  type OffloadOptimizerState,
  type OffloadStepStats,
} from "./adam.js";
export { OffloadConfig, type OffloadConfigInput } from "./config.js";
export { OffloadError, type OffloadErrorCode } from "./errors.js";
export { PagedExperts, type PagedExpertsOptions, type PagedStepStats, pagedDir } from "./paged.js";
export {
  countParameters,
  largestTrainable,
  type MemoryPlan,
  type ParameterCount,
  planMemory,
  type Strategy,
} from "./plan.js";
export { type StoreStats, TieredStore, type TieredStoreOptions } from "./store.js";
