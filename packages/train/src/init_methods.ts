// Model initialisation methods of DeepSpeed-MoE (Kim et al. 2021):
// - experts from dense: every expert of an MoE layer starts as the trained
//   dense model's FFN of the same layer (all other weights copied too);
// - aggregation: experts gathered from several trained checkpoints (dense
//   FFNs count as one expert each) into one larger MoE.
import path from "node:path";

import type { Transformer } from "@polymoe/model";
import { add, randomNormal, tensor, tidy, type Variable } from "@tensorflow/tfjs-core";
import { openModelTensors, type TensorSet } from "./checkpoint.js";
import { TrainError } from "./errors.js";
import { takeSlice } from "./tensor_layout.js";

/** Parameters of checkpoint `file` as one expert or a list of experts for MoE block `block`. */
function ffnExperts(
  file: TensorSet,
  block: string,
): { w1: Float32Array; b1: Float32Array | null; w2: Float32Array; b2: Float32Array | null }[] {
  const dense = `${block}.ffn.w1.w`;
  if (file.has(dense)) {
    return [
      {
        w1: file.read(dense).data as Float32Array,
        b1: file.has(`${block}.ffn.w1.b`) ? (file.read(`${block}.ffn.w1.b`).data as Float32Array) : null,
        w2: file.read(`${block}.ffn.w2.w`).data as Float32Array,
        b2: file.has(`${block}.ffn.w2.b`) ? (file.read(`${block}.ffn.w2.b`).data as Float32Array) : null,
      },
    ];
  }
  const out = [];
  for (let e = 0; file.has(`${block}.ffn.experts.${e}.w1`); e++) {
    const p = `${block}.ffn.experts.${e}`;
    out.push({
      w1: file.read(`${p}.w1`).data as Float32Array,
      b1: file.has(`${p}.b1`) ? (file.read(`${p}.b1`).data as Float32Array) : null,
      w2: file.read(`${p}.w2`).data as Float32Array,
      b2: file.has(`${p}.b2`) ? (file.read(`${p}.b2`).data as Float32Array) : null,
    });
  }
  if (out.length === 0) {
    throw new TrainError(
      "CHECKPOINT_CORRUPT",
      `${file.dir}: block ${block} has neither a dense FFN nor experts`,
    );
  }
  return out;
}

function assignExperts(
  model: Transformer,
  block: string,
  experts: ReturnType<typeof ffnExperts>,
  noise: number,
  seed: number,
): void {
  const layer = model.moeLayers().find((l) => l.name === block)?.layer;
  if (!layer) return;
  const ex = layer.experts;
  const E = ex.numExperts;
  const first = layer.exchange.firstExpert;
  const axes = ex.slicedAxes();
  const slicing = ex.slicing;
  const shapes = { w1: [ex.dModel, ex.dFF], b1: [ex.dFF], w2: [ex.dFF, ex.dModel], b2: [ex.dModel] };
  const stack = (key: "w1" | "b1" | "w2" | "b2", v: Variable | null, k: number) => {
    if (!v) return;
    const full = shapes[key];
    const fullSize = full.reduce((a, b) => a * b, 1);
    const data = new Float32Array(v.size);
    const per = v.size / E;
    for (let i = 0; i < E; i++) {
      const e = first + i;
      const src = (experts[e] as (typeof experts)[number])[key];
      if (!src) throw new TrainError("INVALID_ARGUMENT", `${block}: source expert ${e} has no ${key}`);
      if (src.length !== fullSize) {
        throw new TrainError(
          "ARCHITECTURE_MISMATCH",
          `${block}.${key}: source FFN has ${src.length} values, an expert here has ${fullSize} (different dModel or dFF)`,
        );
      }
      // Noise per global expert at full width, so every parallel layout starts alike.
      let values = src;
      if (noise > 0 && (key === "w1" || key === "w2")) {
        values = tidy(() =>
          Float32Array.from(
            add(
              tensor(src, full),
              randomNormal(full, 0, noise, "float32", seed * 100_003 + 4 * e + k),
            ).dataSync(),
          ),
        );
      }
      const axis = axes[key];
      if (slicing && axis !== null && axis !== undefined)
        values = takeSlice(values, full, axis, slicing.rank, slicing.size);
      data.set(values, i * per);
    }
    tidy(() => v.assign(tensor(data, v.shape)));
  };
  stack("w1", ex.w1, 0);
  stack("b1", ex.b1, 1);
  stack("w2", ex.w2, 2);
  stack("b2", ex.b2, 3);
}

/** Copies every non-expert parameter that exists with the same shape in `file`; returns how many. */
function copyShared(model: Transformer, files: TensorSet[], mode: "first" | "average"): number {
  const expertKeys = new Set(model.expertLayout().keys());
  let copied = 0;
  tidy(() => {
    for (const [key, v] of model.variables()) {
      if (expertKeys.has(key)) continue;
      const sources = (mode === "first" ? files.slice(0, 1) : files).filter(
        (f) => f.has(key) && f.shape(key).join() === v.shape.join(),
      );
      if (sources.length === 0) continue;
      const sum = new Float32Array(v.size);
      for (const f of sources) {
        const d = f.read(key).data as Float32Array;
        for (let i = 0; i < d.length; i++) sum[i] = (sum[i] as number) + (d[i] as number) / sources.length;
      }
      v.assign(tensor(sum, v.shape));
      copied++;
    }
  });
  return copied;
}

const modelFile = (checkpoint: string) => openModelTensors(checkpoint);

/**
 * Initialises an MoE model from a trained dense checkpoint: shared weights are
 * copied and each MoE layer's experts all start as that layer's dense FFN
 * (plus N(0, noise) on the weight matrices, to break the symmetry).
 */
export function initExpertsFromDense(
  model: Transformer,
  checkpoint: string,
  noise = 0,
  seed = 1,
): { copied: number; moeLayers: number } {
  const file = modelFile(checkpoint);
  try {
    const copied = copyShared(model, [file], "first");
    const layers = model.moeLayers();
    layers.forEach(({ name, layer }, i) => {
      const [ffn] = ffnExperts(file, name);
      if (!ffn) return;
      assignExperts(
        model,
        name,
        Array.from({ length: layer.config.numExperts }, () => ffn),
        noise,
        seed + i,
      );
    });
    return { copied, moeLayers: layers.length };
  } finally {
    file.close();
  }
}

/**
 * Aggregates experts from several trained checkpoints: MoE layer L's experts
 * are the concatenation, in checkpoint order, of each source's experts at L (a
 * dense FFN counts as one). Their total must equal the layer's expert count.
 * Shared weights come from the first source or the average of all.
 */
export function aggregateExperts(
  model: Transformer,
  checkpoints: readonly string[],
  shared: "first" | "average" = "average",
): { copied: number } {
  if (checkpoints.length === 0)
    throw new TrainError("INVALID_ARGUMENT", "aggregateExperts: no checkpoints given");
  const files = checkpoints.map(modelFile);
  try {
    const copied = copyShared(model, files, shared);
    for (const { name, layer } of model.moeLayers()) {
      const experts = files.flatMap((f) => ffnExperts(f, name));
      if (experts.length !== layer.config.numExperts) {
        throw new TrainError(
          "ARCHITECTURE_MISMATCH",
          `${name}: the sources hold ${experts.length} experts in total (${files
            .map((f) => `${path.basename(f.dir)}: ${ffnExperts(f, name).length}`)
            .join(", ")}), the layer has ${layer.config.numExperts}`,
        );
      }
      assignExperts(model, name, experts, 0, 0);
    }
    return { copied };
  } finally {
    for (const f of files) f.close();
  }
}
