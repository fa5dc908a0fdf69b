// The MoE-layer side of `pnpm bench:comm` (one rank, under mpirun): one MoE
// layer forward + backward with its experts split over the expert-parallel
// group (bench:moe's shape: 4096 tokens per rank, d_model 512, d_ff 2048,
// top-2 of 8 experts, capacity factor 1.25, fp32, GELU), timed as a whole and
// inside its token exchange (counts and rows, forward and backward).
// usage: moe_ep_rank.ts TOKENS ITERS; rank 0 prints one JSON line (max over ranks, median of ITERS).
import { useBackend } from "@polymoe/kernels";
import { MoeLayer } from "@polymoe/model";
import { Rng } from "@polymoe/routers";
import * as tf from "@tensorflow/tfjs-core";

import { createProcessGroups, modelParallelHooks, mpiWorld, mpiWtime } from "../src/index.js";

const { comm: world } = mpiWorld();
const T = Number(process.argv[2] ?? 4096);
const iters = Number(process.argv[3] ?? 5);
const [M, F, E] = [512, 2048, 8];
await useBackend("auto");

const groups = await createProcessGroups(world, { ep: world.size, tp: 1, experts: E });
const hooks = modelParallelHooks(groups);
const layer = new MoeLayer(
  { numExperts: E, dFF: F, activation: "gelu", router: { type: "topk", k: 2, capacityFactor: 1.25 } },
  { dModel: M, seed: 1, name: "bench.ep", exchange: hooks.exchange({ name: "bench.ep", numExperts: E }) },
);
const x = tf.randomNormal([T, M], 0, 1, "float32", 10 + world.rank) as tf.Tensor2D;
const c = tf.randomNormal([T, M], 0, 1, "float32", 20 + world.rank) as tf.Tensor2D;
const vars = Object.values(layer.variables());

const step = () =>
  tf.tidy(() => {
    const g = tf.grads((a: tf.Tensor, ...v: tf.Tensor[]) => {
      void v;
      const out = layer.forward(a as tf.Tensor2D, { training: true, rng: new Rng(5) });
      return tf.add(tf.sum(tf.mul(out.y, c)), tf.mul(tf.add(out.routing.auxLoss, out.routing.zLoss), 0.01));
    })([x, ...vars]);
    (g[0] as tf.Tensor).dataSync();
  });

const samples: { step: number; comm: number }[] = [];
for (let it = -1; it < iters; it++) {
  await world.barrier();
  hooks.clock.reset();
  const t0 = mpiWtime();
  step();
  const stepS = mpiWtime() - t0;
  const commS = hooks.clock.stats().allToAll.ms / 1000;
  const worst = await world.allReduce(Float64Array.of(stepS, commS), { op: "max" });
  if (it >= 0) samples.push({ step: worst[0]!, comm: worst[1]! });
}
samples.sort((a, b) => a.step - b.step);
const mid = samples[Math.floor(samples.length / 2)]!;
if (world.rank === 0)
  console.log(JSON.stringify({ ranks: world.size, tokens: T, step_s: mid.step, comm_s: mid.comm }));
layer.dispose();
