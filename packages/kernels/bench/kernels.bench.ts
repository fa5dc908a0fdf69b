// pnpm bench:kernels — the native backend against the bare BLAS call and the
// stock tfjs cpu backend, measured side by side in one process. Prints a table
// and, as its last line, one JSON object of the figures.
import * as tf from "@tensorflow/tfjs-core";

import {
  gelu,
  layerNorm,
  logSoftmax,
  logSoftmaxTopK,
  NATIVE_BACKEND_NAME,
  nativeAddon,
  nativeInfo,
  useBackend,
} from "../src/index.js";
import { type EncoderShape, encoderStep, initEncoderParams } from "./encoder_layer.js";

interface Timing {
  ms: number;
  reps: number;
}

/** Median wall time of f over repeats lasting at least minMs (after warmup runs). */
function time(f: () => void, { minMs = 400, warmup = 2, maxReps = 200 } = {}): Timing {
  for (let i = 0; i < warmup; i++) f();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < maxReps && (performance.now() - start < minMs || samples.length < 3)) {
    const t = performance.now();
    f();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return { ms: samples[Math.floor(samples.length / 2)]!, reps: samples.length };
}

function onBackend<T>(name: string, f: () => T): T {
  const prev = tf.getBackend();
  tf.setBackend(name);
  try {
    return f();
  } finally {
    tf.setBackend(prev);
  }
}

function randomArray(n: number, seed: number): Float32Array {
  let s = seed;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

const rows: string[][] = [];
const row = (...cells: (string | number)[]) => rows.push(cells.map(String));
const fmt = (x: number, d = 1) => x.toFixed(d);

const report = await useBackend("native");
const info = nativeInfo();
if (!info.available) throw new Error(`bench:kernels needs the native addon: ${info.reason}`);
const addon = nativeAddon()!;
await tf.setBackend("cpu");
await tf.setBackend(NATIVE_BACKEND_NAME);
(tf.findBackend("cpu") as unknown as { firstUse: boolean }).firstUse = false;

console.log(`native backend: ${report.detail}`);
console.log(`tfjs ${tf.version_core}; node ${process.version}\n`);

const figures: Record<string, number | string> = {};

// The machine's measured FMA peak (register-only chains on every thread).
addon.fmaPeak(2e6);
const peak = Math.max(addon.fmaPeak(2e7), addon.fmaPeak(2e7));
figures.fma_peak_gflops = +peak.toFixed(1);
console.log(
  `measured FMA peak: ${peak.toFixed(1)} GFLOP/s on ${info.available ? info.threads : 1} thread(s)\n`,
);

// --- matrix products -------------------------------------------------------
function gemmFigures(label: string, key: string, M: number, K: number, N: number, cpuReps: boolean) {
  const flop = 2 * M * N * K;
  const A = randomArray(M * K, 1);
  const B = randomArray(K * N, 2);
  const C = new Float32Array(M * N);
  const blasResults: Record<string, number> = {};
  const current = info.available ? info.blas : "openblas";
  for (const blas of info.available && info.onednn
    ? (["openblas", "onednn"] as const)
    : (["openblas"] as const)) {
    addon.setBlas(blas);
    blasResults[blas] = flop / (time(() => addon.sgemm(false, false, M, N, K, A, B, C)).ms * 1e6);
  }
  addon.setBlas(current);
  const sgemm = blasResults[current]!;
  const a = tf.tensor2d(A, [M, K]);
  const b = tf.tensor2d(B, [K, N]);
  const native = flop / (time(() => tf.matMul(a, b).dispose()).ms * 1e6);
  const cpu = onBackend("cpu", () => {
    const ac = tf.tensor2d(A, [M, K]);
    const bc = tf.tensor2d(B, [K, N]);
    const t = time(() => tf.matMul(ac, bc).dispose(), { minMs: 0, warmup: cpuReps ? 1 : 0, maxReps: 1 });
    tf.dispose([ac, bc]);
    return flop / (t.ms * 1e6);
  });
  tf.dispose([a, b]);
  figures[`matmul_${key}_native_gflops`] = +fmt(native);
  figures[`matmul_${key}_sgemm_gflops`] = +fmt(sgemm);
  figures[`matmul_${key}_cpu_gflops`] = +fmt(cpu, 2);
  for (const [blas, g] of Object.entries(blasResults)) figures[`matmul_${key}_${blas}_gflops`] = +fmt(g);
  figures[`matmul_${key}_native_vs_peak`] = +fmt(native / peak, 2);
  row(
    label,
    fmt(native),
    fmt(sgemm),
    fmt(native / sgemm, 2),
    fmt(native / peak, 2),
    fmt(cpu, 2),
    fmt(native / cpu, 0),
  );
}

rows.push([
  "matMul (GFLOP/s)",
  "native",
  `sgemm (${info.available ? info.blas : ""})`,
  "native/sgemm",
  "native/peak",
  "cpu",
  "native/cpu",
]);
gemmFigures("1024x1024 . 1024x1024", "1024", 1024, 1024, 1024, false);
gemmFigures("1280x512 . 512x2048 (MoE expert)", "moe", 1280, 512, 2048, false);
printTable();

// --- elementwise and fused kernels ----------------------------------------
rows.push(["kernel (ms)", "native", "cpu", "cpu/native", "", ""]);
const T = 512;
const D = 256;
const micro: [string, string, () => tf.Tensor | tf.Tensor[]][] = (() => {
  const x = tf.tensor2d(randomArray(T * D, 3), [T, D]);
  const xf = tf.tensor2d(randomArray(T * 1024, 4), [T, 1024]);
  const bias = tf.tensor1d(randomArray(D, 5));
  const s = tf.tensor4d(randomArray(4 * 4 * 128 * 128, 6), [4, 4, 128, 128]);
  const heads = tf.tensor4d(randomArray(T * D, 7), [4, 128, 4, 64]);
  const g = tf.ones([D]);
  const b = tf.zeros([D]);
  const ids = tf.tensor1d(
    Array.from({ length: T }, (_, i) => (i * 7919) % 8000),
    "int32",
  );
  const emb = tf.tensor2d(randomArray(8000 * D, 8), [8000, D]);
  const ids100 = tf.tensor1d(
    Array.from({ length: T }, (_, i) => (i * 37) % 100),
    "int32",
  );
  const dy = tf.tensor2d(randomArray(T * D, 9), [T, D]);
  const logits = tf.tensor2d(randomArray(32 * 8000, 11), [32, 8000]);
  return [
    ["add [512,256]+[256]", "add_bias", () => tf.add(x, bias)],
    ["gelu [512,1024]", "gelu", () => gelu(xf)],
    ["softmax [4,4,128,128]", "softmax", () => tf.softmax(s)],
    ["logSoftmax [512,1024]", "log_softmax", () => logSoftmax(xf)],
    // Decoding's next-token step at batch 32 (vocab 8000, 2 beams' 4 candidates); the
    // cpu side is the composite (logSoftmax, then tfjs's topk).
    [
      "logSoftmaxTopK [32,8000] k=4",
      "log_softmax_topk",
      () => {
        const t = logSoftmaxTopK(logits, 4);
        return [t.values, t.indices];
      },
    ],
    ["sum over tokens [512,1024]", "sum_axis0", () => tf.sum(xf, 0)],
    ["transpose heads [4,128,4,64]", "transpose", () => tf.transpose(heads, [0, 2, 1, 3])],
    ["layerNorm fwd [512,256]", "layernorm_fwd", () => layerNorm(x, g, b)],
    [
      "layerNorm fwd+bwd [512,256]",
      "layernorm_fwd_bwd",
      () => tf.grads((a: tf.Tensor) => tf.sum(tf.mul(layerNorm(a, g, b), dy)))([x]),
    ],
    ["gather rows [8000,256][512]", "gather", () => tf.gather(emb, ids)],
    // The cpu kernel is O(segments x rows x cols): 145 s at 8000 segments, so compare at 100.
    ["unsortedSegmentSum -> [100,256]", "segment_sum", () => tf.unsortedSegmentSum(dy, ids100, 100)],
  ] as [string, string, () => tf.Tensor | tf.Tensor[]][];
})();
for (const [label, key, f] of micro) {
  const run = () => tf.dispose(f());
  const native = time(run, { minMs: 200 }).ms;
  const cpu = onBackend("cpu", () => time(run, { minMs: 200, warmup: 1, maxReps: 20 }).ms);
  figures[`${key}_native_ms`] = +fmt(native, 3);
  figures[`${key}_cpu_ms`] = +fmt(cpu, 3);
  row(label, fmt(native, 3), fmt(cpu, 2), fmt(cpu / native, 0), "", "");
}
printTable();

// --- a whole encoder layer, forward + backward ------------------------------
const shape: EncoderShape = { batch: 4, seq: 128, dModel: 256, dFF: 1024, heads: 4 };
const x = tf.tensor2d(randomArray(shape.batch * shape.seq * shape.dModel, 10), [
  shape.batch * shape.seq,
  shape.dModel,
]);
const params = initEncoderParams(shape);
const encNative = time(() => encoderStep(x, params, shape), { minMs: 1500 }).ms;
const encCpu = onBackend("cpu", () => {
  const xc = tf.tensor2d(x.dataSync(), x.shape as [number, number]);
  const pc = Object.fromEntries(
    Object.entries(params).map(([k, v]) => [k, tf.tensor(v.dataSync(), v.shape)]),
  );
  const t = time(() => encoderStep(xc, pc, shape), { minMs: 0, warmup: 0, maxReps: 2 }).ms;
  tf.dispose([xc, ...Object.values(pc)]);
  return t;
});
figures.encoder_layer_native_ms = +fmt(encNative, 1);
figures.encoder_layer_cpu_ms = +fmt(encCpu, 0);
figures.encoder_layer_speedup = +fmt(encCpu / encNative, 1);
rows.push(["encoder layer fwd+bwd (ms)", "native", "cpu", "cpu/native", "", ""]);
row(
  `${shape.batch}x${shape.seq} tokens, d=${shape.dModel}, ff=${shape.dFF}, ${shape.heads} heads`,
  fmt(encNative, 1),
  fmt(encCpu, 0),
  fmt(encCpu / encNative, 1),
  "",
  "",
);
printTable();

// --- where a native training step spends its time (per tfjs kernel) --------
const byKernel = new Map<string, number>();
const PROFILE_RUNS = 5;
for (let r = 0; r < PROFILE_RUNS; r++) {
  const prof = await tf.profile(() => encoderStep(x, params, shape));
  for (const k of prof.kernels) {
    byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + (k.kernelTimeMs as number) / PROFILE_RUNS);
  }
}
const total = [...byKernel.values()].reduce((a, b) => a + b, 0);
rows.push([`kernel share of a native encoder step (mean of ${PROFILE_RUNS})`, "ms", "%", "", "", ""]);
for (const [name, ms] of [...byKernel.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
  row(name, fmt(ms, 2), fmt((100 * ms) / total, 1), "", "", "");
}
printTable();
figures.threads = info.available ? info.threads : 0;
figures.blas = info.available ? info.blas : "none";

console.log(JSON.stringify(figures));

function printTable() {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  rows.forEach((r, i) => {
    console.log(
      r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  "),
    );
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  });
  console.log();
  rows.length = 0;
}
