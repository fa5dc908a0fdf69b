// Expert pruning (DeepSpeed-MoE): keep the N most-used experts of every MoE
// layer, usage measured on real data (all directions, or one task's), and
// renormalise the gate over them — slicing the gate's expert columns makes the
// softmax run over the kept experts only.
import { copyFileSync, mkdirSync, rmSync, statSync } from "node:fs";
import path from "node:path";

import { type ModelConfig, moeLayerIndices, Transformer } from "@polymoe/model";
import {
  CHECKPOINT_FORMAT,
  modelBytes,
  modelTensors,
  openModelTensors,
  writeFileAtomic,
  writeSafetensors,
} from "@polymoe/train";
import { tensor, tidy } from "@tensorflow/tfjs-core";

import { EvaluationError } from "./errors.js";
import { openCheckpoint } from "./load.js";
import type { LayerUsage } from "./usage.js";

export interface PruneResult {
  dir: string;
  keep: number;
  layers: { layer: string; kept: number[]; usage: number[] }[];
  parameters: number;
  bytes: number;
  sourceBytes: number;
}

/** Total usage per expert of every layer, over the given rows (directions) or all. */
export function usageTotals(usage: readonly LayerUsage[], rows?: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const u of usage) {
    const tot = new Array<number>(u.experts).fill(0);
    u.rows.forEach((r, i) => {
      if (rows && !rows.includes(r)) return;
      u.fractions[i]?.forEach((v, e) => {
        tot[e] = (tot[e] as number) + v;
      });
    });
    out.set(u.layer, tot);
  }
  return out;
}

/**
 * Writes a pruned copy of `checkpoint` to `outDir` keeping, per MoE layer,
 * the `keep` experts with the highest `usage` (ties: lower id).
 */
export async function pruneExperts(
  checkpoint: string,
  keep: number,
  usage: ReadonlyMap<string, readonly number[]>,
  outDir: string,
  opts: { corpus?: string; label?: string } = {},
): Promise<PruneResult> {
  if (!Number.isInteger(keep) || keep < 1)
    throw new EvaluationError("INVALID_ARGUMENT", `--keep must be a positive integer, got ${keep}`);
  const info = await openCheckpoint(checkpoint, opts);
  const full = info.state.model as ModelConfig;
  const config = structuredClone(full) as ModelConfig;
  const kept = new Map<string, number[]>();
  const layers: PruneResult["layers"] = [];
  for (const stack of ["encoder", "decoder"] as const) {
    const p = config.moe?.[stack];
    if (!p) continue;
    if (p.router.type === "static-task") {
      throw new EvaluationError(
        "INVALID_ARGUMENT",
        `model.moe.${stack}: static task routing assigns experts by formula; it cannot be pruned`,
      );
    }
    const n = stack === "encoder" ? config.encoderLayers : config.decoderLayers;
    const counts: number[] = [];
    moeLayerIndices(p, n).forEach((idx, m) => {
      const layer = `${stack}.layers.${idx}`;
      const E = Array.isArray(p.numExperts) ? (p.numExperts[m] as number) : p.numExperts;
      const u = usage.get(layer);
      if (!u || u.length !== E)
        throw new EvaluationError("INVALID_ARGUMENT", `no usage measured for ${layer} (${E} experts)`);
      const order = Array.from(u.keys()).sort((a, b) => (u[b] as number) - (u[a] as number) || a - b);
      const k = Math.min(keep, E);
      const routerK = (p.router as { k?: number }).k ?? 1;
      if (p.router.type !== "expert-choice" && routerK > k) {
        throw new EvaluationError(
          "INVALID_ARGUMENT",
          `--keep ${keep}: ${layer} routes every token to k=${routerK} experts; keep at least ${routerK}`,
        );
      }
      const chosen = order.slice(0, k).sort((a, b) => a - b);
      kept.set(layer, chosen);
      counts.push(k);
      layers.push({ layer, kept: chosen, usage: chosen.map((e) => u[e] as number) });
    });
    p.numExperts = counts.length === 1 ? (counts[0] as number) : counts;
  }
  if (layers.length === 0)
    throw new EvaluationError(
      "INVALID_ARGUMENT",
      `${info.dir} is a dense model: there are no experts to prune`,
    );
  const file = openModelTensors(info.dir);
  try {
    const pruned = new Transformer(config, { seed: 1, namespace: `prune${Date.now() % 1e6}` });
    tidy(() => {
      for (const [key, v] of pruned.variables()) {
        const ex = /^(.*)\.ffn\.experts\.([^.]+)$/.exec(key);
        if (ex) {
          const ids = kept.get(ex[1] as string) as number[];
          const per = v.size / ids.length;
          const data = new Float32Array(v.size);
          for (const [i, g] of ids.entries()) {
            data.set(file.read(`${ex[1]}.ffn.experts.${g}.${ex[2]}`).data as Float32Array, i * per);
          }
          v.assign(tensor(data, v.shape));
          continue;
        }
        const gate = /^(.*)\.ffn\.router\.(gate|noise)$/.exec(key);
        if (gate) {
          const ids = kept.get(gate[1] as string) as number[];
          const src = file.read(key);
          const [rows, E] = src.shape as [number, number];
          const data = new Float32Array(rows * ids.length);
          for (let r = 0; r < rows; r++) {
            for (const [j, e] of ids.entries()) data[r * ids.length + j] = src.data[r * E + e] as number;
          }
          v.assign(tensor(data, v.shape));
          continue;
        }
        v.assign(tensor(file.read(key).data as Float32Array, v.shape));
      }
    });
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(outDir, { recursive: true });
    writeSafetensors(path.join(outDir, "model.safetensors"), modelTensors(pruned), {
      format: CHECKPOINT_FORMAT,
    });
    const state = {
      ...info.state,
      model: config,
      optimizer: null,
      data: null,
      rng: [],
      time: new Date().toISOString(),
      taskSpace: info.space,
      pruning: { source: info.dir, keep, ...(opts.label ? { usage: opts.label } : {}), layers },
    };
    writeFileAtomic(path.join(outDir, "state.json"), [Buffer.from(`${JSON.stringify(state, null, 2)}\n`)]);
    copyFileSync(info.tokenizerFile, path.join(outDir, "tokenizer.json"));
    const result: PruneResult = {
      dir: outDir,
      keep,
      layers,
      parameters: pruned.numParameters(),
      bytes: statSync(path.join(outDir, "model.safetensors")).size,
      sourceBytes: modelBytes(info.dir),
    };
    pruned.dispose();
    return result;
  } finally {
    file.close();
  }
}
