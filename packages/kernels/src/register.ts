import { createRequire } from "node:module";
import {
  findBackendFactory,
  type GradConfig,
  getGradient,
  getKernelsForBackend,
  type KernelConfig,
  registerBackend,
  registerGradient,
  registerKernel,
} from "@tensorflow/tfjs-core";

import { loadAddon, type NativeAddon } from "./addon.js";
import { NATIVE_BACKEND_NAME, NativeBackend } from "./backend.js";
import { KernelError } from "./errors.js";
import { batchMatMulGradConfig } from "./gradients/BatchMatMul_grad.js";
import { dropoutGradConfig } from "./gradients/Dropout_grad.js";
import { geluGradConfig } from "./gradients/Gelu_grad.js";
import { groupedMatMulGradConfig } from "./gradients/Grouped_grad.js";
import { layerNormGradConfig } from "./gradients/LayerNorm_grad.js";
import { moeCombineGradConfig, moeDispatchGradConfig } from "./gradients/Moe_grad.js";
import { cachedAttentionKernel, cacheWriteKernel } from "./kernels/attention.js";
import { batchMatMulKernel } from "./kernels/BatchMatMul.js";
import { binaryKernels } from "./kernels/binary.js";
import { dropoutKernel } from "./kernels/Dropout.js";
import { fusedMatMulKernel } from "./kernels/FusedMatMul.js";
import { gatherV2Kernel } from "./kernels/GatherV2.js";
import { geluGradKernel, geluKernel } from "./kernels/Gelu.js";
import { groupedMatMulGradWKernel, groupedMatMulKernel } from "./kernels/grouped.js";
import { layerNormGradKernel, layerNormKernel } from "./kernels/LayerNorm.js";
import { moeCombineKernel, moeDispatchKernel, moePairDotKernel } from "./kernels/moe.js";
import { padV2Kernel } from "./kernels/PadV2.js";
import { reduceKernels } from "./kernels/reduce.js";
import { scatterNdKernel } from "./kernels/ScatterNd.js";
import { sliceKernel } from "./kernels/Slice.js";
import { logSoftmaxKernel, logSoftmaxTopKKernel, softmaxKernel } from "./kernels/Softmax.js";
import { transposeKernel } from "./kernels/Transpose.js";
import { unsortedSegmentSumKernel } from "./kernels/UnsortedSegmentSum.js";
import { unaryKernels } from "./kernels/unary.js";
import type { NativeKernel } from "./kernels/util.js";
import { resolveNumThreads } from "./threads.js";

/** Every kernel the native backend implements itself; the rest are the cpu backend's. */
export const NATIVE_KERNELS: readonly NativeKernel[] = [
  batchMatMulKernel,
  fusedMatMulKernel,
  ...binaryKernels,
  ...unaryKernels,
  ...reduceKernels,
  softmaxKernel,
  logSoftmaxKernel,
  logSoftmaxTopKKernel,
  transposeKernel,
  sliceKernel,
  padV2Kernel,
  gatherV2Kernel,
  unsortedSegmentSumKernel,
  scatterNdKernel,
  geluKernel,
  geluGradKernel,
  layerNormKernel,
  layerNormGradKernel,
  moeDispatchKernel,
  moeCombineKernel,
  moePairDotKernel,
  groupedMatMulKernel,
  groupedMatMulGradWKernel,
  dropoutKernel,
  cachedAttentionKernel,
  cacheWriteKernel,
];

// LogSoftmax needs none of ours: @tensorflow/tfjs registers its gradient.
const GRADIENTS: readonly GradConfig[] = [
  geluGradConfig,
  layerNormGradConfig,
  moeDispatchGradConfig,
  moeCombineGradConfig,
  groupedMatMulGradConfig,
  dropoutGradConfig,
];

/**
 * Deliberate replacements of @tensorflow/tfjs gradients, each documented at its
 * definition (they are correct on every backend, not only the native one).
 */
const GRADIENT_FIXES: readonly GradConfig[] = [batchMatMulGradConfig];

/** Backend priority: above webgl (2) and cpu (1), below tfjs-node's 'tensorflow' (3). */
const PRIORITY = 2.5;

let gradientsReady = false;

/**
 * tfjs-core's Node bundle registers no gradients; the full @tensorflow/tfjs
 * package does when loaded. Load it once, then add PolyMoE's own gradients
 * (refusing to silently replace someone else's registration).
 */
export function ensureGradients(): void {
  if (gradientsReady) return;
  createRequire(import.meta.url)("@tensorflow/tfjs");
  for (const config of GRADIENTS) {
    const existing = getGradient(config.kernelName);
    if (existing && existing.gradFunc !== config.gradFunc) {
      throw new KernelError(
        "DUPLICATE_REGISTRATION",
        `a gradient for kernel '${config.kernelName}' is already registered by another module`,
      );
    }
    if (!existing) registerGradient(config);
  }
  for (const config of GRADIENT_FIXES) registerGradient(config);
  gradientsReady = true;
}

let registered: NativeAddon | null = null;

export type RegisterResult = { ok: true; addon: NativeAddon } | { ok: false; reason: string };

/**
 * Registers the polymoe-native backend with tfjs (idempotent): all cpu
 * kernels, with the hot ones replaced by native code. Sets the native thread
 * budget (see resolveNumThreads) and the BLAS (POLYMOE_BLAS=openblas|onednn).
 * Never throws for a missing addon: returns the reason instead.
 */
export function registerNativeBackend(): RegisterResult {
  if (registered) return { ok: true, addon: registered };
  const { addon, error } = loadAddon();
  if (!addon) return { ok: false, reason: error };
  ensureGradients();
  addon.setNumThreads(resolveNumThreads());
  const blas = process.env.POLYMOE_BLAS;
  if (blas) {
    if (blas !== "openblas" && blas !== "onednn") {
      throw new KernelError("INVALID_ARGUMENT", `POLYMOE_BLAS must be 'openblas' or 'onednn', got '${blas}'`);
    }
    addon.setBlas(blas);
  }
  // OpenBLAS is the default. oneDNN's sgemm is 8-12% faster at PolyMoE's shapes
  // (docs/benchmarks.md) but opt-in: with it, a process run under V8's CPU
  // profiler (node --cpu-prof) corrupts its heap ("corrupted size vs.
  // prev_size"), reproducibly, while OpenBLAS runs clean.
  if (findBackendFactory(NATIVE_BACKEND_NAME) == null) {
    registerBackend(NATIVE_BACKEND_NAME, () => new NativeBackend(addon), PRIORITY);
    const own = new Set(NATIVE_KERNELS.map((k) => k.kernelName));
    for (const config of getKernelsForBackend("cpu")) {
      if (!own.has(config.kernelName)) registerKernel({ ...config, backendName: NATIVE_BACKEND_NAME });
    }
    for (const k of NATIVE_KERNELS) {
      registerKernel({ ...k, backendName: NATIVE_BACKEND_NAME } as unknown as KernelConfig);
    }
  }
  registered = addon;
  return { ok: true, addon };
}
