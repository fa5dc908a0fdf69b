import { add, erf, exp, type GradConfig, mul, type Tensor, tidy } from "@tensorflow/tfjs-core";

import { Gelu, GeluGrad } from "../kernel_names.js";
import { backendHasKernel, runKernel } from "../ops/util.js";

/** dGELU/dx = Phi(x) + x phi(x); native kernel when present, tfjs ops otherwise. */
export const geluGradConfig: GradConfig = {
  kernelName: Gelu,
  inputsToSave: ["x"],
  gradFunc: (dy, saved) => {
    const [x] = saved as [Tensor];
    const g = dy as Tensor;
    return {
      x: () => {
        if (backendHasKernel(GeluGrad)) return runKernel<Tensor>(GeluGrad, { dy: g, x });
        return tidy(() => {
          const pdf = mul(exp(mul(mul(x, x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
          const cdf = mul(add(erf(mul(x, Math.SQRT1_2)), 1), 0.5);
          return mul(g, add(cdf, mul(x, pdf)));
        });
      },
    };
  },
};
