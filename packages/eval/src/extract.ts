// TaskMoE subnetwork extraction (Kudugunta et al. 2021): for one task, every
// task-routed MoE layer always uses the same top-k experts with the same
// weights, so the layer equals one dense FFN of width k * dFF:
//   sum_j w_j (W2_j act(W1_j x + b1_j) + b2_j)
//     = [w_1 W2_1; ...; w_k W2_k]^T act([W1_1 ... W1_k] x + [b1_1; ...; b1_k]) + sum_j w_j b2_j.
// The extracted checkpoint holds those folded FFNs, everything else of the
// model, and token-routed MoE layers whole (hybrid models), nothing more.
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";

import type { TaskSpace } from "@polymoe/data";
import { type ModelConfig, moeLayerIndices, type TaskKey, Transformer } from "@polymoe/model";
import { temperatureAt } from "@polymoe/routers";
import {
  CHECKPOINT_FORMAT,
  type CheckpointState,
  modelBytes,
  modelTensors,
  openModelTensors,
  type TensorReader,
  writeFileAtomic,
  writeSafetensors,
} from "@polymoe/train";
import { tensor, tidy } from "@tensorflow/tfjs-core";

import { EvaluationError } from "./errors.js";
import { type ExtractionInfo, openCheckpoint, resolveCheckpointDir } from "./load.js";

export interface ExtractResult {
  dir: string;
  parameters: number;
  bytes: number;
  sourceParameters: number;
  sourceBytes: number;
  layers: ExtractionInfo["layers"];
  /** Bytes of tensor data read from the source checkpoint. */
  bytesRead: number;
}

/** The task id of `task` (a language or a pair) for a layer reading `key`. */
export function taskIdFor(space: TaskSpace, key: TaskKey, task: string): number {
  if (key === "target-language") {
    const lang = task.includes("-") ? (task.split("-")[1] as string) : task;
    const id = space.languages.indexOf(lang);
    if (id < 0)
      throw new EvaluationError(
        "UNKNOWN_TASK",
        `unknown task '${task}': target languages are ${space.languages.join(", ")}`,
      );
    return id;
  }
  if (key === "language-pair") {
    const id = space.pairs.indexOf(task);
    if (id < 0)
      throw new EvaluationError(
        "UNKNOWN_TASK",
        `unknown task '${task}': this model routes by language pair; pairs are ${space.pairs.join(", ")}`,
      );
    return id;
  }
  const id = (space.taskTypes as readonly string[]).indexOf(task);
  if (id < 0)
    throw new EvaluationError(
      "UNKNOWN_TASK",
      `unknown task '${task}': task types are ${space.taskTypes.join(", ")}`,
    );
  return id;
}

function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** The experts and weights a task router assigns to task `id` (as the full model computes them at evaluation). */
function taskRouting(
  file: TensorReader,
  layer: string,
  router: Record<string, unknown>,
  id: number,
  E: number,
) {
  const k = router.k as number;
  if (router.type === "static-task") {
    const experts = Array.from({ length: k }, (_, j) => (id * k + j) % E);
    return { experts, weights: experts.map(() => 1 / k) };
  }
  const emb = file.read(`${layer}.ffn.router.taskEmbedding`);
  const gate = file.read(`${layer}.ffn.router.gate`);
  const d = emb.shape[1] as number;
  const t = temperatureAt(router.temperature as never);
  const logits = Array.from({ length: E }, (_, e) => {
    let s = 0;
    for (let i = 0; i < d; i++) s += (emb.data[id * d + i] as number) * (gate.data[i * E + e] as number);
    return s / t;
  });
  const probs = softmax(logits);
  const ranking = router.softmaxOrder === "after" ? logits : probs;
  const experts = Array.from(ranking.keys())
    .sort((a, b) => (ranking[b] as number) - (ranking[a] as number) || a - b)
    .slice(0, k);
  let weights: number[];
  if (router.softmaxOrder === "after") weights = softmax(experts.map((e) => logits[e] as number));
  else {
    weights = experts.map((e) => probs[e] as number);
    if (router.renormalize !== false && k > 1) {
      const s = weights.reduce((a, b) => a + b, 0);
      weights = weights.map((w) => w / s);
    }
  }
  return { experts, weights };
}

const fileParameters = (f: TensorReader) =>
  f.names().reduce((n, name) => n + f.shape(name).reduce((a, b) => a * b, 1), 0);

/**
 * Extracts the subnetwork serving `task` (a target language, or a language
 * pair for pair-routed layers) from a TaskMoE checkpoint into `outDir`: a
 * standalone checkpoint (model.safetensors, state.json, tokenizer.json) that
 * loads and decodes without the full model. Reads only the experts it keeps.
 */
export async function extractTask(
  checkpoint: string,
  task: string,
  outDir: string,
  opts: { corpus?: string } = {},
): Promise<ExtractResult> {
  const dir = resolveCheckpointDir(checkpoint);
  // Task space and tokenizer by the loader's rules; no weights are read here.
  const { space, tokenizerFile, state } = await openCheckpoint(dir, opts);
  const full = state.model as ModelConfig;
  const config = structuredClone(full) as ModelConfig;
  const file = openModelTensors(dir);
  try {
    const layers: ExtractionInfo["layers"] = [];
    const folded = new Map<
      string,
      { w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array }
    >();
    for (const stack of ["encoder", "decoder"] as const) {
      const p = full.moe?.[stack];
      if (!p || (p.router.type !== "task" && p.router.type !== "static-task")) continue;
      const n = stack === "encoder" ? full.encoderLayers : full.decoderLayers;
      const at = moeLayerIndices(p, n);
      const F = p.dFF ?? full.dFF;
      const M = full.dModel;
      const widths: Record<string, number> = {};
      at.forEach((idx, m) => {
        const layer = `${stack}.layers.${idx}`;
        const E = Array.isArray(p.numExperts) ? (p.numExperts[m] as number) : p.numExperts;
        const id = taskIdFor(space, p.taskKey, task);
        const { experts, weights } = taskRouting(
          file,
          layer,
          p.router as unknown as Record<string, unknown>,
          id,
          E,
        );
        const k = experts.length;
        const w1 = new Float32Array(M * k * F);
        const b1 = new Float32Array(k * F);
        const w2 = new Float32Array(k * F * M);
        const b2 = new Float32Array(M);
        experts.forEach((e, j) => {
          const ex = `${layer}.ffn.experts.${e}`;
          const W1 = file.read(`${ex}.w1`).data as Float32Array; // [M, F]
          const W2 = file.read(`${ex}.w2`).data as Float32Array; // [F, M]
          for (let r = 0; r < M; r++) w1.set(W1.subarray(r * F, (r + 1) * F), r * k * F + j * F);
          const wj = weights[j] as number;
          for (let i = 0; i < F * M; i++) w2[j * F * M + i] = wj * (W2[i] as number);
          if (file.has(`${ex}.b1`)) b1.set(file.read(`${ex}.b1`).data as Float32Array, j * F);
          if (file.has(`${ex}.b2`)) {
            const B2 = file.read(`${ex}.b2`).data as Float32Array;
            for (let i = 0; i < M; i++) b2[i] = (b2[i] as number) + wj * (B2[i] as number);
          }
        });
        folded.set(layer, { w1, b1, w2, b2 });
        widths[String(idx)] = k * F;
        layers.push({ layer, taskKey: p.taskKey, taskId: id, experts, weights });
      });
      delete (config.moe as Record<string, unknown>)[stack];
      config.ffnWidths = { ...config.ffnWidths, [stack]: { ...config.ffnWidths?.[stack], ...widths } };
    }
    if (layers.length === 0) {
      throw new EvaluationError(
        "NOT_EXTRACTABLE",
        `${dir} has no task-routed MoE layers (routers: ${["encoder", "decoder"].map((s) => full.moe?.[s as "encoder"]?.router.type ?? "dense").join(", ")}); only TaskMoE models have per-task subnetworks`,
      );
    }
    if (config.moe && !config.moe.encoder && !config.moe.decoder) delete config.moe;
    // Build the subnetwork and fill it: folded FFNs, everything else copied as is.
    const sub = new Transformer(config, { seed: 1, namespace: `extract${Date.now() % 1e6}` });
    const layout = sub.expertLayout();
    tidy(() => {
      for (const [key, v] of sub.variables()) {
        const m = /^(.*)\.ffn\.(w1|w2)\.(w|b)$/.exec(key);
        const f = m ? folded.get(m[1] as string) : undefined;
        if (m && f) {
          const part = m[2] === "w1" ? (m[3] === "w" ? f.w1 : f.b1) : m[3] === "w" ? f.w2 : f.b2;
          v.assign(tensor(part, v.shape));
          continue;
        }
        const lay = layout.get(key);
        if (lay) {
          const parts = Array.from(
            { length: lay.localExperts },
            (_, i) =>
              file.read(key.replace(/\.experts\.([^.]+)$/, `.experts.${lay.firstExpert + i}.$1`))
                .data as Float32Array,
          );
          const data = new Float32Array(v.size);
          parts.forEach((p, i) => {
            data.set(p, i * (v.size / lay.localExperts));
          });
          v.assign(tensor(data, v.shape));
          continue;
        }
        v.assign(tensor(file.read(key).data as Float32Array, v.shape));
      }
    });
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(outDir, { recursive: true });
    const sourceBytes = modelBytes(dir);
    const sourceParameters = fileParameters(file);
    const info: ExtractionInfo = { source: dir, task, layers, sourceParameters, sourceBytes };
    writeSafetensors(path.join(outDir, "model.safetensors"), modelTensors(sub), {
      format: CHECKPOINT_FORMAT,
      extractedTask: task,
    });
    const outState: CheckpointState & { taskSpace: TaskSpace; extraction: ExtractionInfo } = {
      format: CHECKPOINT_FORMAT,
      version: 1,
      step: state.step,
      epoch: state.epoch,
      config: state.config,
      model: config,
      optimizer: null,
      data: null,
      rng: [],
      time: new Date().toISOString(),
      taskSpace: space,
      extraction: info,
    };
    writeFileAtomic(path.join(outDir, "state.json"), [Buffer.from(`${JSON.stringify(outState, null, 2)}\n`)]);
    copyFileSync(tokenizerFile, path.join(outDir, "tokenizer.json"));
    const result: ExtractResult = {
      dir: outDir,
      parameters: sub.numParameters(),
      bytes: statSync(path.join(outDir, "model.safetensors")).size,
      sourceParameters,
      sourceBytes,
      layers,
      bytesRead: file.bytesRead,
    };
    sub.dispose();
    return result;
  } finally {
    file.close();
  }
}

/** Reads an extracted checkpoint's extraction info (undefined for ordinary checkpoints). */
export function extractionInfo(dir: string): ExtractionInfo | undefined {
  const s = JSON.parse(readFileSync(path.join(resolveCheckpointDir(dir), "state.json"), "utf8")) as {
    extraction?: ExtractionInfo;
  };
  return s.extraction;
}
