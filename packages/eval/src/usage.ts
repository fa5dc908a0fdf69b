import type { TaskSpace, Tokenizer } from "@polymoe/data";
import type { Transformer } from "@polymoe/model";
import { Rng } from "@polymoe/routers";
import { toModelBatch } from "@polymoe/train";
import { tidy } from "@tensorflow/tfjs-core";

import { type EvalPairs, encodeEvalBatches } from "./batches.js";

/** Share of routed tokens per expert, by direction, for one MoE layer. */
export interface LayerUsage {
  layer: string;
  experts: number;
  /** Row labels: the directions ("en-fr", ...). */
  rows: string[];
  /** [rows][experts] fraction of the direction's routed (token, expert) pairs. */
  fractions: number[][];
}

/**
 * Expert usage per direction, measured by teacher-forced forward passes over
 * the directions' sentences in eval mode (the routing a trained model does on
 * real inputs, per layer).
 */
export function expertUsage(
  model: Transformer,
  tokenizer: Tokenizer,
  space: TaskSpace,
  sets: readonly EvalPairs[],
  opts: { batchSize?: number; maxSourceLength?: number; maxTargetLength?: number } = {},
): LayerUsage[] {
  const layers = model.moeLayers();
  const counts = new Map<string, Float64Array[]>();
  for (const l of layers) counts.set(l.name, []);
  const rng = new Rng(1);
  for (const set of sets) {
    const batches = encodeEvalBatches([set], tokenizer, space, {
      batchSize: opts.batchSize ?? 64,
      maxSourceLength: Math.min(opts.maxSourceLength ?? 128, model.config.maxLength),
      maxTargetLength: Math.min(opts.maxTargetLength ?? 128, model.config.maxLength),
    });
    const row = new Map(layers.map((l) => [l.name, new Float64Array(l.layer.config.numExperts)]));
    for (const b of batches) {
      tidy(() => {
        const out = model.forward(toModelBatch(b), { training: false, rng });
        for (const r of out.moe) {
          const acc = row.get(r.layer) as Float64Array;
          r.metrics.tokensPerExpert.forEach((n, e) => {
            acc[e]! += n;
          });
        }
      });
    }
    for (const l of layers) (counts.get(l.name) as Float64Array[]).push(row.get(l.name) as Float64Array);
  }
  return layers.map((l) => ({
    layer: l.name,
    experts: l.layer.config.numExperts,
    rows: sets.map((s) => s.pair),
    fractions: (counts.get(l.name) as Float64Array[]).map((r) => {
      const total = r.reduce((a, b) => a + b, 0);
      return Array.from(r, (n) => (total > 0 ? n / total : 0));
    }),
  }));
}
