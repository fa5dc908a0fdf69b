import { LayerNorm, type LayerNormAttrs, LayerNormGrad } from "../kernel_names.js";
import { input, type NativeKernel, sizeOf } from "./util.js";

/** LayerNorm over the last axis: x [..., D], gamma [D], beta [D] -> y [..., D]. */
export const layerNormKernel: NativeKernel = {
  kernelName: LayerNorm,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x", LayerNorm);
    const gamma = input(inputs, "gamma", LayerNorm);
    const beta = input(inputs, "beta", LayerNorm);
    const { epsilon } = attrs as unknown as LayerNormAttrs;
    const xv = backend.f32(x);
    const gv = backend.f32(gamma);
    const bv = backend.f32(beta);
    if (!xv || !gv || !bv) throw new Error("layerNorm: x, gamma and beta must be float32");
    const cols = x.shape[x.shape.length - 1] as number;
    const n = sizeOf(x.shape);
    const y = backend.allocF32(n);
    backend.native.layerNorm(xv, gv, bv, y, cols === 0 ? 0 : n / cols, cols, epsilon);
    return backend.output(x.shape.slice(), y);
  },
};

/** Outputs [dx [..., D], dgamma [D], dbeta [D]]. */
export const layerNormGradKernel: NativeKernel = {
  kernelName: LayerNormGrad,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const dy = input(inputs, "dy", LayerNormGrad);
    const x = input(inputs, "x", LayerNormGrad);
    const gamma = input(inputs, "gamma", LayerNormGrad);
    const { epsilon } = attrs as unknown as LayerNormAttrs;
    const dyv = backend.f32(dy);
    const xv = backend.f32(x);
    const gv = backend.f32(gamma);
    if (!dyv || !xv || !gv) throw new Error("layerNormGrad: dy, x and gamma must be float32");
    const cols = x.shape[x.shape.length - 1] as number;
    const n = sizeOf(x.shape);
    const dx = backend.allocF32(n);
    const dgamma = new Float32Array(cols);
    const dbeta = new Float32Array(cols);
    backend.native.layerNormGrad(dyv, xv, gv, dx, dgamma, dbeta, cols === 0 ? 0 : n / cols, cols, epsilon);
    return [
      backend.output(x.shape.slice(), dx),
      backend.output([cols], dgamma),
      backend.output([cols], dbeta),
    ];
  },
};
