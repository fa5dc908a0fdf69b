// @polymoe/kernels: a native CPU backend for TensorFlow.js and PolyMoE's
// custom kernels. Import this package, then `await useBackend()` once.
export { addonPath, type NativeAddon, type NativeInfo } from "./addon.js";
export { NATIVE_BACKEND_NAME } from "./backend.js";
export { KernelError, type KernelErrorCode } from "./errors.js";
export {
  CachedAttention,
  type CachedAttentionAttrs,
  type CachedAttentionInputs,
  CacheWrite,
  type CacheWriteAttrs,
  type CacheWriteInputs,
  Dropout,
  type DropoutAttrs,
  type DropoutInputs,
  Gelu,
  GeluGrad,
  type GeluGradInputs,
  type GeluInputs,
  GroupedMatMul,
  type GroupedMatMulAttrs,
  GroupedMatMulGradW,
  type GroupedMatMulGradWAttrs,
  type GroupedMatMulGradWInputs,
  type GroupedMatMulInputs,
  LayerNorm,
  type LayerNormAttrs,
  LayerNormGrad,
  type LayerNormGradInputs,
  type LayerNormInputs,
  LogSoftmaxTopK,
  type LogSoftmaxTopKAttrs,
  type LogSoftmaxTopKInputs,
  MoeCombine,
  type MoeCombineAttrs,
  type MoeCombineInputs,
  MoeDispatch,
  type MoeDispatchAttrs,
  type MoeDispatchInputs,
  MoePairDot,
  type MoePairDotInputs,
} from "./kernel_names.js";
export { nativeAddon, nativeInfo, setNumThreads } from "./native.js";
export { experimental_nativeValues } from "./native_values.js";
export { type CachedAttentionOptions, cachedAttention, kvCacheAppend } from "./ops/attention.js";
export { dropout } from "./ops/dropout.js";
export { gelu, geluComposite } from "./ops/gelu.js";
export { groupedMatMul } from "./ops/grouped_matmul.js";
export { layerNorm, layerNormComposite } from "./ops/layer_norm.js";
export { type LogSoftmaxTopKOptions, logSoftmax, logSoftmaxTopK } from "./ops/log_softmax.js";
export { type MoePairs, moeCombine, moeDispatch } from "./ops/moe.js";
export { backendHasKernel } from "./ops/util.js";
export {
  type AdamArrays,
  type AdamStepConfig,
  type AdamStepOptions,
  adamStep,
  copyFloat32,
} from "./optim.js";
export { ensureGradients, NATIVE_KERNELS, type RegisterResult, registerNativeBackend } from "./register.js";
export { resolveNumThreads } from "./threads.js";
export { BACKEND_CHOICES, type BackendChoice, type BackendReport, useBackend } from "./use_backend.js";
