import { _FusedMatMul, type _FusedMatMulAttrs, backend_util } from "@tensorflow/tfjs-core";

import { BinOp, UnOp } from "../native_ops.js";
import { nativeBatchMatMul } from "./BatchMatMul.js";
import { cpuKernel, input, type NativeKernel } from "./util.js";

const ACTIVATIONS: Record<string, number | undefined> = {
  relu: UnOp.Relu,
  relu6: UnOp.Relu6,
  elu: UnOp.Elu,
  leakyrelu: UnOp.LeakyRelu,
  sigmoid: UnOp.Sigmoid,
};

/**
 * act(op(A) op(B) + bias): the BLAS product, then bias and activation applied
 * in place on the output (no intermediate tensors). Activations: linear, relu,
 * relu6, elu, leakyrelu, sigmoid, prelu (with preluActivationWeights).
 */
export const fusedMatMulKernel: NativeKernel = {
  kernelName: _FusedMatMul,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { transposeA, transposeB, activation, leakyreluAlpha } = attrs as unknown as _FusedMatMulAttrs;
    const a = input(inputs, "a", _FusedMatMul);
    const b = input(inputs, "b", _FusedMatMul);
    const bias = inputs.bias;
    const prelu = inputs.preluActivationWeights;
    const fallback = () => cpuKernel(_FusedMatMul)({ inputs, backend, ...(attrs ? { attrs } : {}) });
    const biasV = bias ? backend.f32(bias) : null;
    const preluV = prelu ? backend.f32(prelu) : null;
    const act = activation ?? "linear";
    if ((bias && !biasV) || (prelu && !preluV)) return fallback();
    if (act !== "linear" && act !== "prelu" && ACTIVATIONS[act] === undefined) return fallback();
    const out = nativeBatchMatMul(backend, a, b, transposeA, transposeB);
    if (!out) return fallback();
    const values = backend.f32(out) as Float32Array;
    if (bias && biasV) {
      const shape = backend_util.assertAndGetBroadcastShape(out.shape, bias.shape);
      if (shape.length !== out.shape.length || shape.some((d, i) => d !== out.shape[i])) {
        throw new Error(`fused matMul: bias of shape [${bias.shape}] does not broadcast to [${out.shape}]`);
      }
      backend.native.binary(BinOp.Add, values, out.shape, biasV, bias.shape, values, out.shape);
    }
    if (act === "prelu") {
      if (!prelu || !preluV) throw new Error("fused matMul: activation 'prelu' needs preluActivationWeights");
      backend.native.binary(BinOp.Prelu, values, out.shape, preluV, prelu.shape, values, out.shape);
    } else if (act !== "linear") {
      backend.native.unary(ACTIVATIONS[act] as number, values, values, leakyreluAlpha ?? 0.2);
    }
    return out;
  },
};
