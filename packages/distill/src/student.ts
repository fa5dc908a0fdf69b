// The dense student: by default the size of an extracted TaskMoE subnetwork of the teacher
// (@polymoe/eval extractTask): every MoE layer becomes one dense FFN of width k x the expert
// width (k experts per token or task), every other layer as in the teacher.
import path from "node:path";

import { type ModelConfig, type MoePlacement, moeLayerIndices, type Transformer } from "@polymoe/model";
import { SafetensorsFile } from "@polymoe/train";
import { tensor, tidy } from "@tensorflow/tfjs-core";

import { DistillError } from "./errors.js";

/** Experts a token uses in a layer of this placement (expert-choice: its average k, rounded up). */
function expertsPerToken(p: MoePlacement): number {
  return Math.ceil((p.router as { k?: number }).k ?? 1);
}

/**
 * The dense model an MoE teacher's extracted subnetwork would be: MoE layer i of a stack →
 * `ffnWidths[stack][i] = k * (expert dFF)` (plus the residual FFN's width for Residual MoE),
 * everything else as in the teacher. A dense teacher gives itself.
 */
export function studentConfig(teacher: ModelConfig): ModelConfig {
  const out = structuredClone(teacher) as ModelConfig;
  delete out.moe;
  for (const stack of ["encoder", "decoder"] as const) {
    const p = teacher.moe?.[stack];
    if (!p) continue;
    const n = stack === "encoder" ? teacher.encoderLayers : teacher.decoderLayers;
    const F = p.dFF ?? teacher.dFF;
    const widths: Record<string, number> = { ...teacher.ffnWidths?.[stack] };
    for (const i of moeLayerIndices(p, n)) widths[String(i)] = expertsPerToken(p) * F + (p.residual ? F : 0);
    out.ffnWidths = { ...out.ffnWidths, [stack]: widths };
  }
  return out;
}

/** Parameters a dense model of `config` has (as Transformer.numParameters counts them). */
export function denseParameters(config: ModelConfig): number {
  if (config.moe?.encoder || config.moe?.decoder) {
    throw new DistillError("NOT_DENSE", "denseParameters: the config has MoE layers");
  }
  const M = config.dModel;
  const norm = 2 * M;
  const attention = 4 * (M * M + M);
  const ffn = (stack: "encoder" | "decoder", i: number) => {
    const W = config.ffnWidths?.[stack]?.[String(i)] ?? config.dFF;
    return M * W + W + W * M + M;
  };
  let n = config.vocabSize * M + (config.positions === "learned" ? config.maxLength * M : 0);
  for (let i = 0; i < config.encoderLayers; i++) n += 2 * norm + attention + ffn("encoder", i);
  for (let i = 0; i < config.decoderLayers; i++) n += 3 * norm + 2 * attention + ffn("decoder", i);
  if (config.encoderLayers > 0) n += norm;
  return n + norm;
}

export interface StudentInit {
  /** Student parameters copied from the teacher. */
  copied: string[];
  /** Student parameters left as initialised (no same-named, same-shaped teacher tensor). */
  kept: string[];
}

/**
 * Initialises the student from the teacher's non-expert weights (as the TaskMoE paper did):
 * every student parameter whose name and shape the teacher checkpoint has (embeddings,
 * attention, norms, dense FFNs). The FFNs at the teacher's MoE layers keep their init.
 */
export function initStudentFromTeacher(student: Transformer, teacherDir: string): StudentInit {
  if (student.moeLayers().length > 0) {
    throw new DistillError(
      "NOT_DENSE",
      "initStudentFromTeacher: the student has MoE layers; it must be dense",
    );
  }
  const file = SafetensorsFile.open(path.join(teacherDir, "model.safetensors"));
  const copied: string[] = [];
  const kept: string[] = [];
  try {
    tidy(() => {
      for (const [key, v] of student.variables()) {
        if (file.has(key) && file.shape(key).join() === v.shape.join()) {
          v.assign(tensor(file.read(key).data as Float32Array, v.shape));
          copied.push(key);
        } else kept.push(key);
      }
    });
  } finally {
    file.close();
  }
  return { copied, kept };
}
