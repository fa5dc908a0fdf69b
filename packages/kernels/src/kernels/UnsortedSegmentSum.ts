import { UnsortedSegmentSum, type UnsortedSegmentSumAttrs } from "@tensorflow/tfjs-core";

import { cpuKernel, input, type NativeKernel, sizeOf } from "./util.js";

/**
 * out[s] = sum of x[n] over n with segmentIds[n] = s; x [N, ...], segmentIds
 * [N] int32, out [numSegments, ...]. Ids outside [0, numSegments) are dropped.
 * O(N * inner), where the stock cpu kernel is O(numSegments * N * inner) —
 * the difference between milliseconds and minutes for an embedding gradient.
 */
export const unsortedSegmentSumKernel: NativeKernel = {
  kernelName: UnsortedSegmentSum,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x", UnsortedSegmentSum);
    const ids = input(inputs, "segmentIds", UnsortedSegmentSum);
    const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs;
    const xv = backend.f32(x);
    const iv = backend.i32(ids);
    if (!xv || !iv || ids.shape.length !== 1 || x.shape.length < 1) {
      return cpuKernel(UnsortedSegmentSum)({ inputs, backend, ...(attrs ? { attrs } : {}) });
    }
    const n = ids.shape[0] as number;
    if (x.shape[0] !== n) {
      throw new Error(
        `unsortedSegmentSum: segmentIds has ${n} entries but x has ${x.shape[0]} rows (x shape [${x.shape}])`,
      );
    }
    const innerShape = x.shape.slice(1);
    const inner = sizeOf(innerShape);
    const shape = [numSegments, ...innerShape];
    const out = backend.allocF32(sizeOf(shape));
    backend.native.unsortedSegmentSum(xv, iv, n, inner, numSegments, out);
    return backend.output(shape, out);
  },
};
