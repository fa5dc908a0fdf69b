import type { GradConfig, Tensor } from "@tensorflow/tfjs-core";

import { Dropout, type DropoutAttrs } from "../kernel_names.js";
import { runKernel } from "../ops/util.js";

/** dx = the same mask and scale applied to dy: the kernel again, with the forward pass's seed. */
export const dropoutGradConfig: GradConfig = {
  kernelName: Dropout,
  gradFunc: (dy, _saved, attrs) => {
    const { rate, seed } = attrs as unknown as DropoutAttrs;
    return { x: () => runKernel<Tensor>(Dropout, { x: dy as Tensor }, { rate, seed }) };
  },
};
