import { type GradConfig, grads, reshape, sum, type Tensor, zerosLike } from "@tensorflow/tfjs-core";

import { LayerNorm, type LayerNormAttrs, LayerNormGrad } from "../kernel_names.js";
import { layerNormComposite } from "../ops/layer_norm.js";
import { backendHasKernel, runKernel } from "../ops/util.js";

/**
 * One fused backward kernel yields dx, dgamma and dbeta together; they are
 * computed once, when tfjs asks for the node's gradients, and handed out.
 */
export const layerNormGradConfig: GradConfig = {
  kernelName: LayerNorm,
  inputsToSave: ["x", "gamma"],
  gradFunc: (dy, saved, attrs) => {
    const [x, gamma] = saved as [Tensor, Tensor];
    const { epsilon } = attrs as unknown as LayerNormAttrs;
    if (!backendHasKernel(LayerNormGrad)) {
      // The backend changed since the forward pass: differentiate the composite.
      const [dx, dgamma] = grads((a: Tensor, g: Tensor) => layerNormComposite(a, g, zerosLike(g), epsilon))(
        [x, gamma],
        dy as Tensor,
      ) as [Tensor, Tensor];
      const dbeta = sum(reshape(dy as Tensor, [-1, gamma.shape[0] as number]), 0);
      return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
    }
    const [dx, dgamma, dbeta] = runKernel<Tensor[]>(
      LayerNormGrad,
      { dy: dy as Tensor, x, gamma },
      { epsilon },
    ) as [Tensor, Tensor, Tensor];
    return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
  },
};
