import { BatchMatMul, type BatchMatMulAttrs, backend_util, type TensorInfo } from "@tensorflow/tfjs-core";

import type { NativeBackend } from "../backend.js";
import { cpuKernel, input, type NativeKernel } from "./util.js";

/**
 * C = op(A) op(B) over broadcast batch dims through BLAS sgemm.
 * a: [...batchA, M, K] ([..., K, M] if transposeA); b: [...batchB, K, N]
 * ([..., N, K] if transposeB); out: [...broadcast(batchA, batchB), M, N].
 * Unlike the stock cpu kernel, batch dims broadcast on both sides
 * ([2,1,M,K] x [1,4,K,N] -> [2,4,M,N]).
 */
export function nativeBatchMatMul(
  backend: NativeBackend,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): TensorInfo | null {
  const av = backend.f32(a);
  const bv = backend.f32(b);
  if (!av || !bv) return null;
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) {
    throw new Error(`matMul: both operands need rank >= 2, got shapes [${a.shape}] and [${b.shape}]`);
  }
  const M = (transposeA ? a.shape[ra - 1] : a.shape[ra - 2]) as number;
  const Ka = (transposeA ? a.shape[ra - 2] : a.shape[ra - 1]) as number;
  const Kb = (transposeB ? b.shape[rb - 1] : b.shape[rb - 2]) as number;
  const N = (transposeB ? b.shape[rb - 2] : b.shape[rb - 1]) as number;
  if (Ka !== Kb) {
    throw new Error(
      `matMul: inner dimensions differ: ${Ka} vs ${Kb} for shapes [${a.shape}] and [${b.shape}] ` +
        `(transposeA=${transposeA}, transposeB=${transposeB})`,
    );
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const outBatch = backend_util.assertAndGetBroadcastShape(aBatch, bBatch);
  const outShape = [...outBatch, M, N];
  let size = M * N;
  for (const d of outBatch) size *= d;
  const out = backend.allocF32(size);
  backend.native.batchMatMul(av, aBatch, bv, bBatch, outBatch, M, N, Ka, transposeA, transposeB, out);
  return backend.output(outShape, out);
}

export const batchMatMulKernel: NativeKernel = {
  kernelName: BatchMatMul,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
    const a = input(inputs, "a", BatchMatMul);
    const b = input(inputs, "b", BatchMatMul);
    return (
      nativeBatchMatMul(backend, a, b, transposeA, transposeB) ??
      cpuKernel(BatchMatMul)({ inputs, backend, ...(attrs ? { attrs } : {}) })
    );
  },
};
