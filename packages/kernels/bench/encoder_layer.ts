// A pre-LayerNorm Transformer encoder layer written with plain tfjs ops and
// PolyMoE's custom ops, for benchmarking and profiling backends. (The model
// package has the real layer; this one stays dependency-free on purpose.)
import * as tf from "@tensorflow/tfjs-core";

import { gelu, layerNorm } from "../src/index.js";

export interface EncoderShape {
  batch: number;
  seq: number;
  dModel: number;
  dFF: number;
  heads: number;
}

export type EncoderParams = Record<string, tf.Tensor>;

export function initEncoderParams(s: EncoderShape, seed = 1): EncoderParams {
  const n = (shape: number[], fanIn: number, k: number) =>
    tf.randomNormal(shape, 0, 1 / Math.sqrt(fanIn), "float32", seed + k);
  return {
    ln1g: tf.ones([s.dModel]),
    ln1b: tf.zeros([s.dModel]),
    wq: n([s.dModel, s.dModel], s.dModel, 1),
    wk: n([s.dModel, s.dModel], s.dModel, 2),
    wv: n([s.dModel, s.dModel], s.dModel, 3),
    wo: n([s.dModel, s.dModel], s.dModel, 4),
    bq: tf.zeros([s.dModel]),
    bk: tf.zeros([s.dModel]),
    bv: tf.zeros([s.dModel]),
    bo: tf.zeros([s.dModel]),
    ln2g: tf.ones([s.dModel]),
    ln2b: tf.zeros([s.dModel]),
    w1: n([s.dModel, s.dFF], s.dModel, 5),
    b1: tf.zeros([s.dFF]),
    w2: n([s.dFF, s.dModel], s.dFF, 6),
    b2: tf.zeros([s.dModel]),
  };
}

/** x: [batch * seq, dModel] -> same shape. */
export function encoderLayer(x: tf.Tensor2D, p: EncoderParams, s: EncoderShape): tf.Tensor2D {
  const dh = s.dModel / s.heads;
  const lin = (h: tf.Tensor2D, w: string, b: string) =>
    tf.add(tf.matMul(h, p[w] as tf.Tensor2D), p[b]!) as tf.Tensor2D;
  const split = (h: tf.Tensor2D) => tf.transpose(tf.reshape(h, [s.batch, s.seq, s.heads, dh]), [0, 2, 1, 3]);
  const h1 = layerNorm(x, p.ln1g!, p.ln1b!);
  const q = split(lin(h1, "wq", "bq"));
  const k = split(lin(h1, "wk", "bk"));
  const v = split(lin(h1, "wv", "bv"));
  const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh));
  const attn = tf.matMul(tf.softmax(scores), v);
  const merged = tf.reshape(tf.transpose(attn, [0, 2, 1, 3]), [s.batch * s.seq, s.dModel]) as tf.Tensor2D;
  const x1 = tf.add(x, lin(merged, "wo", "bo")) as tf.Tensor2D;
  const h2 = layerNorm(x1, p.ln2g!, p.ln2b!);
  const ff = lin(gelu(lin(h2, "w1", "b1")), "w2", "b2");
  return tf.add(x1, ff) as tf.Tensor2D;
}

/** One forward + backward pass (gradients of a scalar loss w.r.t. every parameter). */
export function encoderStep(x: tf.Tensor2D, p: EncoderParams, s: EncoderShape): void {
  tf.tidy(() => {
    const names = Object.keys(p);
    const g = tf.grads((...ts: tf.Tensor[]) => {
      const q: EncoderParams = {};
      names.forEach((n, i) => {
        q[n] = ts[i]!;
      });
      return tf.mean(tf.square(encoderLayer(x, q, s)));
    })(names.map((n) => p[n]!));
    // Force the work to finish (it is synchronous on cpu backends anyway).
    g[0]!.dataSync();
  });
}
