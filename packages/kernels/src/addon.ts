import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** What the native addon reports about itself. */
export interface NativeInfo {
  blas: "openblas" | "onednn";
  blasConfig: string;
  onednn: boolean;
  threads: number;
  openmp: boolean;
  simd: string;
}

/**
 * The addon's entry points. All work zero-copy on caller-owned typed arrays,
 * row-major; outputs are preallocated by the caller. Op codes are the enums
 * in native/src/eltwise.h and shape_ops.h (mirrored in ./native_ops.ts).
 */
export interface NativeAddon {
  info(): NativeInfo;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  setBlas(name: "openblas" | "onednn"): void;
  sgemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    A: Float32Array,
    B: Float32Array,
    C: Float32Array,
  ): void;
  /** GFLOP/s of register-only FMA chains on every thread (the machine's measured peak). */
  fmaPeak(iters: number): number;
  batchMatMul(
    a: Float32Array,
    aBatch: readonly number[],
    b: Float32Array,
    bBatch: readonly number[],
    outBatch: readonly number[],
    M: number,
    N: number,
    K: number,
    transA: boolean,
    transB: boolean,
    out: Float32Array,
  ): void;
  binary(
    op: number,
    a: Float32Array,
    aShape: readonly number[],
    b: Float32Array,
    bShape: readonly number[],
    out: Float32Array,
    outShape: readonly number[],
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  geluGrad(dy: Float32Array, x: Float32Array, dx: Float32Array): void;
  reduce(
    op: number,
    x: Float32Array,
    shape: readonly number[],
    axes: readonly number[],
    out: Float32Array,
  ): void;
  transpose(x: Float32Array, shape: readonly number[], perm: readonly number[], out: Float32Array): void;
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number, log: boolean): void;
  logSoftmaxTopK(
    x: Float32Array,
    values: Float32Array,
    indices: Int32Array,
    rows: number,
    cols: number,
    k: number,
    exclude: number,
  ): void;
  /** Attention of T queries over the first L of S cached rows (see native/src/shape_ops.h). */
  cachedAttention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    mask: Float32Array | null,
    out: Float32Array,
    B: number,
    T: number,
    S: number,
    L: number,
    H: number,
    D: number,
    scale: number,
    causal: boolean,
  ): void;
  layerNorm(
    x: Float32Array,
    gamma: Float32Array | null,
    beta: Float32Array | null,
    y: Float32Array,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  layerNormGrad(
    dy: Float32Array,
    x: Float32Array,
    gamma: Float32Array | null,
    dx: Float32Array,
    dgamma: Float32Array | null,
    dbeta: Float32Array | null,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  gather(
    params: Float32Array,
    outer: number,
    axisDim: number,
    inner: number,
    indices: Int32Array,
    out: Float32Array,
  ): void;
  unsortedSegmentSum(
    data: Float32Array,
    segmentIds: Int32Array,
    n: number,
    inner: number,
    numSegments: number,
    out: Float32Array,
  ): void;
  scatterNd(
    indices: Int32Array,
    updates: Float32Array,
    n: number,
    sliceSize: number,
    indexDims: readonly number[],
    out: Float32Array,
  ): void;
  slice(
    x: Float32Array,
    shape: readonly number[],
    begin: readonly number[],
    size: readonly number[],
    out: Float32Array,
  ): void;
  pad(
    x: Float32Array,
    shape: readonly number[],
    before: readonly number[],
    after: readonly number[],
    value: number,
    out: Float32Array,
  ): void;
  /** buf[dest[p]] = weight[p] * x[token[p]] (weight null: 1); unwritten rows zeroed. */
  moeDispatch(
    x: Float32Array,
    T: number,
    M: number,
    token: Int32Array,
    dest: Int32Array,
    weight: Float32Array | null,
    rows: number,
    buf: Float32Array,
  ): void;
  /** y[t] = sum over pairs of token t of weight[p] * buf[dest[p]]. */
  moeCombine(
    buf: Float32Array,
    rows: number,
    M: number,
    token: Int32Array,
    dest: Int32Array,
    weight: Float32Array | null,
    T: number,
    y: Float32Array,
  ): void;
  /** dw[p] = <a[token[p]], b[dest[p]]> (0 for dropped pairs). */
  moePairDot(
    a: Float32Array,
    T: number,
    b: Float32Array,
    rows: number,
    M: number,
    token: Int32Array,
    dest: Int32Array,
    dw: Float32Array,
  ): void;
  /** Inverted dropout, mask from (seed, index) only (see native/src/eltwise.h). */
  dropout(x: Float32Array, y: Float32Array, rate: number, seed: number): void;
  /** y[r] = x[r] op(w[e]) + bias[e] over segments (start, rows, expert); uncovered rows zero. */
  groupedMatMul(
    x: Float32Array,
    w: Float32Array,
    bias: Float32Array | null,
    segments: Int32Array,
    rows: number,
    E: number,
    K: number,
    N: number,
    transposeW: boolean,
    y: Float32Array,
  ): void;
  /** dw[e] = sum over e's segments of a_s^T g_s; db[e] = sum of g's rows of e (db may be null). */
  groupedMatMulGradW(
    a: Float32Array,
    g: Float32Array,
    segments: Int32Array,
    rows: number,
    E: number,
    Ka: number,
    Ng: number,
    dw: Float32Array,
    db: Float32Array | null,
  ): void;
  /** Fused Adam/AdamW step in place over param, m, v (see native/src/optim.cc). */
  adamUpdate(
    param: Float32Array,
    grad: Float32Array,
    m: Float32Array,
    v: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    bias1: number,
    bias2: number,
    gradScale: number,
    decoupled: boolean,
  ): void;
  /** Sum of squares with double accumulation. */
  sumSquares(x: Float32Array): number;
  /** dst = src, multi-threaded memcpy (lengths must match). */
  copyF32(dst: Float32Array, src: Float32Array): void;
}

type LoadResult = { addon: NativeAddon; error: null } | { addon: null; error: string };

let loaded: LoadResult | undefined;

/** Where the addon is looked for: POLYMOE_KERNELS_ADDON, else this package's build/Release. */
export function addonPath(): string {
  return (
    process.env.POLYMOE_KERNELS_ADDON ??
    fileURLToPath(new URL("../build/Release/polymoe_kernels.node", import.meta.url))
  );
}

/** Loads the addon once; never throws. */
export function loadAddon(): LoadResult {
  if (loaded) return loaded;
  const file = addonPath();
  if (!existsSync(file)) {
    loaded = {
      addon: null,
      error:
        `the native addon was not found at ${file} (it is built when @polymoe/kernels installs; ` +
        "on Debian/Ubuntu: apt-get install -y g++ make python3 libopenblas-openmp-dev, then " +
        "pnpm --filter @polymoe/kernels build:native)",
    };
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(file) as NativeAddon;
    loaded = { addon, error: null };
  } catch (e) {
    loaded = {
      addon: null,
      error: `the native addon at ${file} failed to load: ${(e as Error).message.split("\n")[0]}`,
    };
  }
  return loaded;
}
