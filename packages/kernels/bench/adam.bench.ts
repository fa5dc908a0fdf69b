// pnpm bench:adam — the fused native Adam step against this machine's memory
// bandwidth (a multi-threaded memcpy measured in the same run) and against
// tf.train.adam on the polymoe-native backend, side by side in one process.
// Last line: one JSON object of the figures.
import * as tf from "@tensorflow/tfjs-core";

import { adamStep, copyFloat32, NATIVE_BACKEND_NAME, nativeInfo, useBackend } from "../src/index.js";

const N = Number(process.env.BENCH_ADAM_ELEMENTS ?? 8 * 1024 * 1024);

/** Median wall time (ms) of f over repeats lasting at least minMs, after warmup. */
function time(f: () => void, { minMs = 1500, warmup = 2, maxReps = 50 } = {}): number {
  for (let i = 0; i < warmup; i++) f();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < maxReps && (performance.now() - start < minMs || samples.length < 5)) {
    const t = performance.now();
    f();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] as number;
}

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = (s / 4294967296 - 0.5) * scale;
  }
  return a;
}

await useBackend("native");
const info = nativeInfo();
if (!info.available) throw new Error(`bench:adam needs the native addon: ${info.reason}`);
const threads = info.threads;
console.log(
  `bench:adam — ${N.toLocaleString()} float32 parameters (${((N * 4) / 2 ** 20).toFixed(0)} MiB per array), ${threads} thread(s)`,
);

const param = rand(N, 1);
const grad = rand(N, 2, 0.1);
const m = new Float32Array(N);
const v = new Float32Array(N);
const dst = new Float32Array(N);
const GB = 1e9;

// memcpy: reads N floats, writes N floats.
const memcpyMs = time(() => copyFloat32(dst, param));
const memcpyGbps = (8 * N) / (memcpyMs / 1000) / GB;

// Fused Adam: reads param, grad, m, v; writes param, m, v = 28 bytes per parameter.
let step = 0;
const cfg = { lr: 1e-4, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.01, decoupled: true };
const nativeMs = time(() => adamStep({ param, grad, m, v }, { ...cfg, step: ++step }, { impl: "native" }));
const adamGbps = (28 * N) / (nativeMs / 1000) / GB;

// The plain-loop path (what runs without the addon).
const jsMs = time(() => adamStep({ param, grad, m, v }, { ...cfg, step: ++step }, { impl: "js" }), {
  minMs: 1000,
  warmup: 1,
  maxReps: 5,
});

// tf.train.adam on the polymoe-native backend (every op a native kernel).
await tf.setBackend(NATIVE_BACKEND_NAME);
const pVar = tf.variable(tf.tensor1d(param), true, "bench_adam_p");
const gT = tf.tensor1d(grad);
const opt = tf.train.adam(1e-4, 0.9, 0.98, 1e-8);
const tfjsMs = time(() => opt.applyGradients([{ name: "bench_adam_p", tensor: gT }]), {
  minMs: 1500,
  warmup: 2,
  maxReps: 20,
});
opt.dispose();
pVar.dispose();
gT.dispose();

const rows = [
  ["memcpy (native, multi-threaded)", memcpyMs, `${memcpyGbps.toFixed(2)} GB/s`, ""],
  [
    "fused Adam, native",
    nativeMs,
    `${adamGbps.toFixed(2)} GB/s`,
    `${((100 * adamGbps) / memcpyGbps).toFixed(0)}% of memcpy`,
  ],
  [
    "fused Adam, plain JS loop",
    jsMs,
    `${((28 * N) / (jsMs / 1000) / GB).toFixed(2)} GB/s`,
    `${(jsMs / nativeMs).toFixed(1)}x slower`,
  ],
  [
    "tf.train.adam on polymoe-native",
    tfjsMs,
    `${((28 * N) / (tfjsMs / 1000) / GB).toFixed(2)} GB/s*`,
    `${(tfjsMs / nativeMs).toFixed(1)}x slower`,
  ],
] as const;
console.log("");
console.log(`${"".padEnd(34)}${"ms/step".padStart(10)}${"bandwidth".padStart(14)}  vs`);
for (const [name, ms, bw, note] of rows) {
  console.log(`${name.padEnd(34)}${ms.toFixed(2).padStart(10)}${bw.padStart(14)}  ${note}`);
}
console.log("* the same 28 bytes per parameter; tfjs moves more (one tensor per op, no weight decay)\n");
console.log(
  JSON.stringify({
    elements: N,
    threads,
    adam_gbps: +adamGbps.toFixed(2),
    memcpy_gbps: +memcpyGbps.toFixed(2),
    adam_ms: +nativeMs.toFixed(2),
    js_loop_ms: +jsMs.toFixed(2),
    tfjs_ms: +tfjsMs.toFixed(2),
    speedup_vs_tfjs: +(tfjsMs / nativeMs).toFixed(2),
  }),
);
