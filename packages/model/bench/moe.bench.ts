// pnpm bench:moe — the MoE layer forward + backward against (a) its own
// expert matmuls alone (the floor: the two grouped matmuls over the rows the
// routing kept), (b) dense batched matmuls over the whole padded capacity
// buffer [E, C, M], and (c) the classic one-hot einsum dispatch/combine
// (DeepSpeed's original formulation), all on the native backend in one
// process. Last line: one JSON object of the figures.
import { groupedMatMul, moeCombine, moeDispatch, useBackend } from "@polymoe/kernels";
import { Rng, type Routing } from "@polymoe/routers";
import * as tf from "@tensorflow/tfjs-core";

import { MoeLayer, packRows } from "../src/index.js";

const T = 4096;
const M = 512;
const F = 2048;
const K = 2;
const CF = 1.25;

function median(f: () => void, reps: number, warmup = 1): number {
  for (let i = 0; i < warmup; i++) f();
  const s: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    f();
    s.push(performance.now() - t);
  }
  s.sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const report = await useBackend(process.env.POLYMOE_BACKEND === "cpu" ? "cpu" : "native");
console.log(`backend: ${report.backend} — ${report.detail}`);
console.log(
  `MoE layer: ${T} tokens, d_model ${M}, d_ff ${F}, top-${K}, capacity factor ${CF}, fp32, GELU experts\n`,
);

const x = tf.randomNormal([T, M], 0, 1, "float32", 1) as tf.Tensor2D;
const c = tf.randomNormal([T, M], 0, 1, "float32", 2) as tf.Tensor2D;
const figures: Record<string, number | string> = {};
const rows: string[][] = [];

function stepFull(layer: MoeLayer, einsum: boolean) {
  tf.tidy(() => {
    const vars = Object.values(layer.variables());
    const rng = new Rng(5);
    const forward = (a: tf.Tensor2D): { y: tf.Tensor2D; routing: Routing } => {
      if (!einsum) return layer.forward(a, { training: true, rng });
      // The same routing, dispatched and combined with dense one-hot matrices.
      const routing = layer.router.route(a, { training: true, rng });
      const E = layer.config.numExperts;
      const C = routing.capacity;
      const R = E * C;
      const D = new Float32Array(T * R);
      const flat = new Int32Array(routing.pairs.dest.length);
      routing.pairs.dest.forEach((d, p) => {
        const t = routing.pairs.token[p] as number;
        flat[p] = d >= 0 ? t * R + d : -1;
        if (d >= 0) D[t * R + d] = 1;
      });
      const Dt = tf.tensor2d(D, [T, R]);
      const Wt = tf.reshape(tf.unsortedSegmentSum(routing.combineWeight, tf.tensor1d(flat, "int32"), T * R), [
        T,
        R,
      ]);
      const buf = tf.reshape(tf.matMul(Dt, a, true, false), [E, C, M]) as tf.Tensor3D; // einsum('tec,tm->ecm')
      const out = tf.reshape(layer.experts.apply(buf), [R, M]) as tf.Tensor2D;
      return { y: tf.matMul(Wt, out) as tf.Tensor2D, routing }; // einsum('tec,ecm->tm')
    };
    const g = tf.grads((a: tf.Tensor, ...v: tf.Tensor[]) => {
      void v;
      const { y, routing } = forward(a as tf.Tensor2D);
      return tf.add(tf.sum(tf.mul(y, c)), tf.mul(tf.add(routing.auxLoss, routing.zLoss), 0.01)) as tf.Scalar;
    })([x, ...vars]);
    (g[0] as tf.Tensor).dataSync();
  });
}

/** The layer's own expert GEMMs alone: the two grouped matmuls over its packed rows, forward + backward. */
function stepFloor(rows: number, segments: Int32Array, w1: tf.Tensor, w2: tf.Tensor) {
  tf.tidy(() => {
    const buf = tf.randomNormal([rows, M], 0, 1, "float32", 3) as tf.Tensor2D;
    const c2 = tf.ones([rows, M]);
    const g = tf.grads((b: tf.Tensor, a: tf.Tensor, d: tf.Tensor) =>
      tf.sum(
        tf.mul(
          groupedMatMul(
            groupedMatMul(b as tf.Tensor2D, a as tf.Tensor3D, segments),
            d as tf.Tensor3D,
            segments,
          ),
          c2,
        ),
      ),
    )([buf, w1, w2]);
    (g[0] as tf.Tensor).dataSync();
  });
}

/** Dense batched GEMMs over the whole capacity buffer [E, C, M] (what a padded layout computes). */
function stepPadded(E: number, C: number, w1: tf.Tensor, w2: tf.Tensor) {
  tf.tidy(() => {
    const buf = tf.randomNormal([E, C, M], 0, 1, "float32", 3);
    const c2 = tf.ones([E, C, M]);
    const g = tf.grads((b: tf.Tensor, a: tf.Tensor, d: tf.Tensor) =>
      tf.sum(tf.mul(tf.matMul(tf.matMul(b, a), d), c2)),
    )([buf, w1, w2]);
    (g[0] as tf.Tensor).dataSync();
  });
}

for (const E of [8, 32]) {
  const layer = new MoeLayer(
    { numExperts: E, dFF: F, activation: "gelu", router: { type: "topk", k: K, capacityFactor: CF } },
    { dModel: M, seed: 1, name: `bench.E${E}` },
  );
  const C = Math.ceil((CF * T * K) / E);
  const reps = 5;
  // The rows the layer's experts process (the same routing stepFull draws: same RNG seed).
  const routed = layer.router.route(x, { training: true, rng: new Rng(5) });
  const packed = packRows(routed.pairs, E, routed.capacity);
  tf.dispose([routed.combineWeight, routed.auxLoss, routed.zLoss]);
  const moe = median(() => stepFull(layer, false), reps);
  const floor = median(
    () => stepFloor(packed.rows, packed.segments, layer.experts.w1, layer.experts.w2),
    reps,
  );
  const padded = median(() => stepPadded(E, C, layer.experts.w1, layer.experts.w2), reps);
  figures[`padded_ms_E${E}`] = +padded.toFixed(1);
  figures[`moe_ms_E${E}`] = +moe.toFixed(1);
  figures[`floor_ms_E${E}`] = +floor.toFixed(1);
  figures[`moe_over_floor_E${E}`] = +(moe / floor).toFixed(3);
  const gflop = (6 * 2 * packed.rows * M * F) / 1e9;
  figures[`floor_gflops_E${E}`] = +(gflop / (floor / 1000)).toFixed(1);
  let einsum = Number.NaN;
  if (E === 32 || process.env.BENCH_EINSUM_ALL === "1") {
    einsum = median(() => stepFull(layer, true), 3);
    figures[`einsum_ms_E${E}`] = +einsum.toFixed(1);
    figures[`einsum_over_moe_E${E}`] = +(einsum / moe).toFixed(2);
  }
  rows.push([
    `E=${E} (capacity ${C}, ${packed.rows} rows kept)`,
    moe.toFixed(1),
    floor.toFixed(1),
    (moe / floor).toFixed(2),
    padded.toFixed(1),
    Number.isNaN(einsum) ? "-" : einsum.toFixed(1),
    Number.isNaN(einsum) ? "-" : (einsum / moe).toFixed(2),
  ]);

  // Where the layer's forward time goes, by step.
  const split = tf.tidy(() => {
    const rng = new Rng(5);
    const t0 = performance.now();
    const routing = layer.router.route(x, { training: true, rng });
    const t1 = performance.now();
    const p = packRows(routing.pairs, E, routing.capacity);
    const buf = moeDispatch(x, p.pairs, p.rows);
    buf.dataSync();
    const t2 = performance.now();
    const out = layer.experts.applyGrouped(buf, p.segments);
    out.dataSync();
    const t3 = performance.now();
    moeCombine(out, p.pairs, T, routing.combineWeight).dataSync();
    const t4 = performance.now();
    return { route: t1 - t0, dispatch: t2 - t1, experts: t3 - t2, combine: t4 - t3 };
  });
  figures[`fwd_split_E${E}`] = Object.entries(split)
    .map(([k, v]) => `${k}:${v.toFixed(1)}`)
    .join(",");
  console.log(
    `E=${E} forward by step (ms): route ${split.route.toFixed(1)}, dispatch ${split.dispatch.toFixed(1)}, ` +
      `experts ${split.experts.toFixed(1)}, combine ${split.combine.toFixed(1)}`,
  );
  layer.dispose();
}

console.log();
const head = [
  "forward + backward (ms)",
  "MoE layer",
  "floor: expert GEMMs",
  "MoE/floor",
  "padded [E,C,M] GEMMs",
  "one-hot einsum",
  "einsum/MoE",
];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
console.log(head.map((h, i) => (i === 0 ? h.padEnd(widths[i]!) : h.padStart(widths[i]!))).join("  "));
console.log(widths.map((w) => "-".repeat(w)).join("  "));
for (const r of rows)
  console.log(r.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join("  "));
console.log();
console.log(JSON.stringify(figures));
