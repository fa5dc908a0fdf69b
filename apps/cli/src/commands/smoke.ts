import { parseArgs } from "node:util";

import {
  BACKEND_CHOICES,
  type BackendChoice,
  gelu,
  layerNorm,
  logSoftmax,
  useBackend,
} from "@polymoe/kernels";
import * as tf from "@tensorflow/tfjs-core";

import type { Command } from "../registry.js";

const HELP = `usage: polymoe smoke [--backend ${BACKEND_CHOICES.join("|")}] [--steps N] [--seed N]

Trains a one-layer pre-LN Transformer (d=128, 4 heads, ff=512) with Adam to
reverse random token sequences, on the selected backend, and prints the loss,
tokens/s and which backend, BLAS and threads did the work. Exits non-zero if
the loss did not fall. Until the training app lands, this is the quick start's main job.`;

interface Params {
  [name: string]: tf.Variable;
}

/** Sequences of `len` random tokens from [1, vocab) and their reversal. */
function batchOf(rng: () => number, batch: number, len: number, vocab: number) {
  const src = new Int32Array(batch * len);
  const tgt = new Int32Array(batch * len);
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < len; i++) {
      const t = 1 + Math.floor(rng() * (vocab - 1));
      src[b * len + i] = t;
      tgt[b * len + (len - 1 - i)] = t;
    }
  return { src, tgt };
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const command: Command = {
  summary: "smoke-train a Transformer layer",
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        backend: { type: "string", default: process.env.POLYMOE_BACKEND ?? "auto" },
        steps: { type: "string", default: "60" },
        seed: { type: "string", default: "1" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const steps = Number(values.steps);
    if (!Number.isInteger(steps) || steps < 2) {
      console.error(`polymoe smoke: --steps must be an integer >= 2, got '${values.steps}'`);
      return 2;
    }
    const report = await useBackend(values.backend as BackendChoice);
    console.log(`backend: ${report.backend} — ${report.detail}`);
    if (report.fallbackReason) console.log(`(native backend unavailable: ${report.fallbackReason})`);

    const [V, L, B, d, H, F] = [64, 16, 32, 128, 4, 512];
    const dh = d / H;
    const seed = Number(values.seed);
    const init = (shape: number[], scale: number, k: number) =>
      tf.variable(tf.randomNormal(shape, 0, scale, "float32", seed * 100 + k));
    const p: Params = {
      emb: init([V, d], 0.1, 1),
      pos: init([L, d], 0.1, 2),
      ln1g: tf.variable(tf.ones([d])),
      ln1b: tf.variable(tf.zeros([d])),
      wqkv: init([d, 3 * d], 1 / Math.sqrt(d), 3),
      wo: init([d, d], 1 / Math.sqrt(d), 4),
      ln2g: tf.variable(tf.ones([d])),
      ln2b: tf.variable(tf.zeros([d])),
      w1: init([d, F], 1 / Math.sqrt(d), 5),
      w2: init([F, d], 1 / Math.sqrt(F), 6),
      lnfg: tf.variable(tf.ones([d])),
      lnfb: tf.variable(tf.zeros([d])),
    };
    const nParams = Object.values(p).reduce((s, v) => s + v.size, 0);
    console.log(
      `model: 1-layer Transformer, ${nParams.toLocaleString("en-US")} parameters; task: reverse ${L} tokens`,
    );

    const forwardLoss = (src: tf.Tensor1D, tgt: tf.Tensor1D) => {
      const x0 = tf.add(tf.reshape(tf.gather(p.emb!, src), [B, L, d]), p.pos!);
      const x = tf.reshape(x0, [B * L, d]);
      const qkv = tf.matMul(layerNorm(x, p.ln1g!, p.ln1b!), p.wqkv!);
      const heads = (i: number) =>
        tf.transpose(tf.reshape(tf.slice(qkv, [0, i * d], [B * L, d]), [B, L, H, dh]), [0, 2, 1, 3]);
      const att = tf.softmax(tf.mul(tf.matMul(heads(0), heads(1), false, true), 1 / Math.sqrt(dh)));
      const ctx = tf.reshape(tf.transpose(tf.matMul(att, heads(2)), [0, 2, 1, 3]), [B * L, d]);
      const x1 = tf.add(x, tf.matMul(ctx, p.wo!));
      const x2 = tf.add(x1, tf.matMul(gelu(tf.matMul(layerNorm(x1, p.ln2g!, p.ln2b!), p.w1!)), p.w2!));
      const logits = tf.matMul(layerNorm(x2, p.lnfg!, p.lnfb!), p.emb!, false, true);
      const logp = logSoftmax(logits);
      return tf.neg(tf.mean(tf.sum(tf.mul(logp, tf.oneHot(tgt, V)), -1))) as tf.Scalar;
    };

    const opt = tf.train.adam(3e-3);
    const rng = mulberry32(seed);
    let first = Number.NaN;
    let last = Number.NaN;
    const t0 = performance.now();
    for (let step = 1; step <= steps; step++) {
      const { src, tgt } = batchOf(rng, B, L, V);
      const loss = tf.tidy(() => {
        const s = tf.tensor1d(src, "int32");
        const t = tf.tensor1d(tgt, "int32");
        return opt.minimize(() => forwardLoss(s, t), true) as tf.Scalar;
      });
      const value = loss.dataSync()[0] as number;
      loss.dispose();
      if (step === 1) first = value;
      last = value;
      if (step === 1 || step % 10 === 0 || step === steps) {
        const secs = (performance.now() - t0) / 1000;
        console.log(
          `step ${String(step).padStart(4)}  loss ${value.toFixed(4)}  ${Math.round((step * B * L) / secs)} tokens/s`,
        );
      }
    }
    const secs = (performance.now() - t0) / 1000;
    opt.dispose();
    tf.dispose(Object.values(p));
    const ok = Number.isFinite(last) && last < first * 0.8;
    console.log(
      `${ok ? "ok" : "FAILED"}: loss ${first.toFixed(3)} -> ${last.toFixed(3)} in ${steps} steps, ` +
        `${secs.toFixed(1)} s, ${Math.round((steps * B * L) / secs)} tokens/s on ${report.backend}`,
    );
    return ok ? 0 : 1;
  },
};
