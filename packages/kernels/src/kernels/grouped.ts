import {
  GroupedMatMul,
  type GroupedMatMulAttrs,
  GroupedMatMulGradW,
  type GroupedMatMulGradWAttrs,
} from "../kernel_names.js";
import { input, type NativeKernel } from "./util.js";

export const groupedMatMulKernel: NativeKernel = {
  kernelName: GroupedMatMul,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x", GroupedMatMul);
    const w = input(inputs, "w", GroupedMatMul);
    const { transposeW } = attrs as unknown as GroupedMatMulAttrs;
    const xv = backend.f32(x);
    const wv = backend.f32(w);
    const bias = inputs.bias;
    const bv = bias ? backend.f32(bias) : null;
    const seg = backend.i32(input(inputs, "segments", GroupedMatMul));
    if (!xv || !wv || (bias && !bv)) throw new Error(`${GroupedMatMul}: x, w and bias must be float32`);
    if (!seg) throw new Error(`${GroupedMatMul}: segments must be int32`);
    const [R, K] = x.shape as [number, number];
    const [E, a, b] = w.shape as [number, number, number];
    const N = transposeW ? a : b;
    const y = backend.allocF32(R * N);
    backend.native.groupedMatMul(xv, wv, bv, seg, R, E, K, N, transposeW, y);
    return backend.output([R, N], y);
  },
};

export const groupedMatMulGradWKernel: NativeKernel = {
  kernelName: GroupedMatMulGradW,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const a = input(inputs, "a", GroupedMatMulGradW);
    const g = input(inputs, "g", GroupedMatMulGradW);
    const { numExperts: E } = attrs as unknown as GroupedMatMulGradWAttrs;
    const av = backend.f32(a);
    const gv = backend.f32(g);
    const seg = backend.i32(input(inputs, "segments", GroupedMatMulGradW));
    if (!av || !gv) throw new Error(`${GroupedMatMulGradW}: a and g must be float32`);
    if (!seg) throw new Error(`${GroupedMatMulGradW}: segments must be int32`);
    const [R, Ka] = a.shape as [number, number];
    const Ng = g.shape[1] as number;
    const dw = backend.allocF32(E * Ka * Ng);
    const db = new Float32Array(E * Ng);
    backend.native.groupedMatMulGradW(av, gv, seg, R, E, Ka, Ng, dw, db);
    return [backend.output([E, Ka, Ng], dw), backend.output([E, Ng], db)];
  },
};
