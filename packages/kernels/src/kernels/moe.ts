import {
  MoeCombine,
  type MoeCombineAttrs,
  MoeDispatch,
  type MoeDispatchAttrs,
  MoePairDot,
} from "../kernel_names.js";
import { input, type NativeKernel } from "./util.js";

function pairArrays(
  backend: Parameters<NativeKernel["kernelFunc"]>[0]["backend"],
  token: never,
  dest: never,
  kernel: string,
) {
  const t = backend.i32(token);
  const d = backend.i32(dest);
  if (!t || !d) throw new Error(`${kernel}: token and dest must be int32`);
  return { t, d };
}

export const moeDispatchKernel: NativeKernel = {
  kernelName: MoeDispatch,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x", MoeDispatch);
    const { rows } = attrs as unknown as MoeDispatchAttrs;
    const xv = backend.f32(x);
    if (!xv) throw new Error(`${MoeDispatch}: x must be float32`);
    const { t, d } = pairArrays(backend, inputs.token as never, inputs.dest as never, MoeDispatch);
    const wv = backend.f32(input(inputs, "weight", MoeDispatch));
    const [T, M] = x.shape as [number, number];
    const buf = backend.allocF32(rows * M);
    backend.native.moeDispatch(xv, T, M, t, d, wv, rows, buf);
    return backend.output([rows, M], buf);
  },
};

export const moeCombineKernel: NativeKernel = {
  kernelName: MoeCombine,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const buf = input(inputs, "buf", MoeCombine);
    const { numTokens } = attrs as unknown as MoeCombineAttrs;
    const bv = backend.f32(buf);
    if (!bv) throw new Error(`${MoeCombine}: buf must be float32`);
    const { t, d } = pairArrays(backend, inputs.token as never, inputs.dest as never, MoeCombine);
    const wv = backend.f32(input(inputs, "weight", MoeCombine));
    const [rows, M] = buf.shape as [number, number];
    const y = backend.allocF32(numTokens * M);
    backend.native.moeCombine(bv, rows, M, t, d, wv, numTokens, y);
    return backend.output([numTokens, M], y);
  },
};

export const moePairDotKernel: NativeKernel = {
  kernelName: MoePairDot,
  kernelFunc: ({ inputs, backend }) => {
    const a = input(inputs, "a", MoePairDot);
    const b = input(inputs, "b", MoePairDot);
    const av = backend.f32(a);
    const bv = backend.f32(b);
    if (!av || !bv) throw new Error(`${MoePairDot}: a and b must be float32`);
    const { t, d } = pairArrays(backend, inputs.token as never, inputs.dest as never, MoePairDot);
    const out = new Float32Array(t.length);
    backend.native.moePairDot(
      av,
      a.shape[0] as number,
      bv,
      b.shape[0] as number,
      a.shape[1] as number,
      t,
      d,
      out,
    );
    return backend.output([t.length], out);
  },
};
