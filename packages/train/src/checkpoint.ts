// Checkpoints, fairseq style: a directory per save (checkpoint_<epoch>_<step>)
// holding model.safetensors, optimizer.safetensors and state.json, with
// checkpoint_last and checkpoint_best as symlinks swapped atomically. A save
// is built in a temporary directory, fsynced, then renamed into place, so a
// process killed mid-save leaves the previous checkpoint intact.
//
// Expert weights are stored one tensor per global expert id
// ("decoder.layers.1.ffn.experts.<id>.w1"), whatever the expert-parallel
// layout of the run that saved them.
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import path from "node:path";

import type { Transformer } from "@polymoe/model";
import { tensor, tidy } from "@tensorflow/tfjs-core";

import { TrainError } from "./errors.js";
import type { AdamW, OptimizerState } from "./optimizer.js";
import {
  fsyncDir,
  SafetensorsFile,
  type TensorEntry,
  writeFileAtomic,
  writeSafetensors,
} from "./safetensors.js";

export const CHECKPOINT_FORMAT = "polymoe-checkpoint";

/** state.json of a checkpoint. */
export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
  step: number;
  epoch: number;
  /** The full resolved run config. */
  config: unknown;
  /** The model config (architecture) alone, for mismatch checks and loading. */
  model: unknown;
  optimizer: { type: string; step: number } | null;
  /** The batch iterator's position (opaque to this package). */
  data: unknown;
  /** RNG state (routing, dropout). */
  rng: number[];
  devLoss?: number;
  bestDevLoss?: number;
  time: string;
}

const expertName = (key: string, id: number) => key.replace(/\.experts\.([^.]+)$/, `.experts.${id}.$1`);

/** Model variables as tensors keyed for a checkpoint (experts split by global id). */
export function modelTensors(model: Transformer): Map<string, TensorEntry> {
  const layout = model.expertLayout();
  const out = new Map<string, TensorEntry>();
  for (const [key, v] of model.variables()) {
    const data = Float32Array.from(v.dataSync() as Float32Array);
    const lay = layout.get(key);
    if (!lay) {
      out.set(key, { dtype: "F32", shape: v.shape.slice(), data });
      continue;
    }
    const per = data.length / lay.localExperts;
    for (let i = 0; i < lay.localExperts; i++) {
      out.set(expertName(key, lay.firstExpert + i), {
        dtype: "F32",
        shape: v.shape.slice(1),
        data: data.slice(i * per, (i + 1) * per),
      });
    }
  }
  return out;
}

function optimizerTensors(model: Transformer, state: OptimizerState): Map<string, TensorEntry> {
  const layout = model.expertLayout();
  const out = new Map<string, TensorEntry>();
  for (const [k, t] of state.tensors) {
    const key = k.slice(0, -2);
    const suffix = k.slice(-2);
    const lay = layout.get(key);
    if (!lay) {
      out.set(k, { dtype: "F32", shape: t.shape, data: t.values });
      continue;
    }
    const per = t.values.length / lay.localExperts;
    for (let i = 0; i < lay.localExperts; i++) {
      out.set(`${expertName(key, lay.firstExpert + i)}${suffix}`, {
        dtype: "F32",
        shape: t.shape.slice(1),
        data: t.values.slice(i * per, (i + 1) * per),
      });
    }
  }
  return out;
}

/** Reads `key` for the local layout: plain, or stacked from per-expert tensors. */
function readParam(
  file: SafetensorsFile,
  key: string,
  lay: { firstExpert: number; localExperts: number } | undefined,
  suffix = "",
): { shape: number[]; data: Float32Array } | null {
  if (!lay) {
    if (!file.has(key + suffix)) return null;
    const t = file.read(key + suffix);
    return { shape: t.shape, data: t.data as Float32Array };
  }
  const parts: Float32Array[] = [];
  let shape: number[] = [];
  for (let i = 0; i < lay.localExperts; i++) {
    const name = expertName(key, lay.firstExpert + i) + suffix;
    if (!file.has(name)) return null;
    const t = file.read(name);
    shape = t.shape;
    parts.push(t.data as Float32Array);
  }
  const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.length;
  }
  return { shape: [lay.localExperts, ...shape], data };
}

/** Global expert count per expert parameter stored in a checkpoint. */
function storedExperts(file: SafetensorsFile): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of file.names()) {
    const m = /^(.*\.experts)\.(\d+)\.([^.]+)$/.exec(n);
    if (m) {
      const key = `${m[1]}.${m[3]}`;
      counts.set(key, Math.max(counts.get(key) ?? 0, Number(m[2]) + 1));
    }
  }
  return counts;
}

const ARCH_FIELDS = [
  "vocabSize",
  "dModel",
  "heads",
  "dFF",
  "encoderLayers",
  "decoderLayers",
  "activation",
  "positions",
  "maxLength",
  "ffnWidths",
] as const;

/**
 * Lines describing how a checkpoint's architecture differs from the model's
 * (empty when they match).
 */
export function architectureDiff(file: SafetensorsFile, savedConfig: unknown, model: Transformer): string[] {
  const lines: string[] = [];
  const saved = (savedConfig ?? {}) as Record<string, unknown>;
  const now = model.config as unknown as Record<string, unknown>;
  for (const f of ARCH_FIELDS) {
    if (saved[f] !== undefined && JSON.stringify(saved[f]) !== JSON.stringify(now[f])) {
      lines.push(`model.${f}: checkpoint ${JSON.stringify(saved[f])}, this run ${JSON.stringify(now[f])}`);
    }
  }
  for (const stack of ["encoder", "decoder"] as const) {
    const a = (saved.moe as Record<string, Record<string, unknown>> | undefined)?.[stack];
    const b = model.config.moe?.[stack] as Record<string, unknown> | undefined;
    for (const f of ["layers", "numExperts", "residual", "taskKey"]) {
      if (JSON.stringify(a?.[f]) !== JSON.stringify(b?.[f])) {
        lines.push(
          `model.moe.${stack}.${f}: checkpoint ${JSON.stringify(a?.[f])}, this run ${JSON.stringify(b?.[f])}`,
        );
      }
    }
    const ra = (a?.router as { type?: string } | undefined)?.type;
    const rb = (b?.router as { type?: string } | undefined)?.type;
    if (ra !== rb)
      lines.push(
        `model.moe.${stack}.router.type: checkpoint ${JSON.stringify(ra)}, this run ${JSON.stringify(rb)}`,
      );
  }
  const layout = model.expertLayout();
  const experts = storedExperts(file);
  for (const [key, v] of model.variables()) {
    const lay = layout.get(key);
    if (lay) {
      const n = experts.get(key);
      if (n === undefined) lines.push(`parameter ${key}: missing from the checkpoint`);
      else if (n !== lay.numExperts)
        lines.push(`parameter ${key}: checkpoint has ${n} experts, this run ${lay.numExperts}`);
      else {
        const shape = file.shape(expertName(key, 0));
        if (shape.join() !== v.shape.slice(1).join()) {
          lines.push(`parameter ${key}: checkpoint expert shape [${shape}], this run [${v.shape.slice(1)}]`);
        }
      }
    } else if (!file.has(key)) lines.push(`parameter ${key}: missing from the checkpoint`);
    else if (file.shape(key).join() !== v.shape.join()) {
      lines.push(`parameter ${key}: checkpoint [${file.shape(key)}], this run [${v.shape}]`);
    }
  }
  return lines;
}

/** Directory of checkpoints under a run directory. */
export const checkpointsDir = (runDir: string) => path.join(runDir, "checkpoints");

/** The checkpoint `checkpoint_last` points to, or null. */
export function lastCheckpoint(runDir: string): string | null {
  const link = path.join(checkpointsDir(runDir), "checkpoint_last");
  try {
    const target = readlinkSync(link);
    const dir = path.resolve(checkpointsDir(runDir), target);
    return existsSync(path.join(dir, "state.json")) ? dir : null;
  } catch {
    return null;
  }
}

function swapLink(dir: string, name: string, target: string): void {
  const tmp = path.join(dir, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, path.join(dir, name));
}

export interface SaveOptions {
  /** Also point checkpoint_best here. */
  best: boolean;
  /** Step checkpoints to keep (older ones not pointed to by last/best are deleted); 0 keeps all. */
  keepLast: number;
}

/**
 * Saves model, optimizer and state atomically as checkpoint_<epoch>_<step>
 * and points checkpoint_last (and checkpoint_best) at it. Returns its path.
 */
export function saveCheckpoint(
  runDir: string,
  model: Transformer,
  optimizer: AdamW | null,
  state: CheckpointState,
  opts: SaveOptions,
): string {
  const dir = checkpointsDir(runDir);
  mkdirSync(dir, { recursive: true });
  const name = `checkpoint_${state.epoch}_${state.step}`;
  const final = path.join(dir, name);
  const tmp = path.join(dir, `.tmp-${name}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeSafetensors(path.join(tmp, "model.safetensors"), modelTensors(model), { format: CHECKPOINT_FORMAT });
  if (optimizer) {
    writeSafetensors(path.join(tmp, "optimizer.safetensors"), optimizerTensors(model, optimizer.state()), {
      format: CHECKPOINT_FORMAT,
    });
  }
  writeFileAtomic(path.join(tmp, "state.json"), [Buffer.from(`${JSON.stringify(state, null, 2)}\n`)]);
  fsyncDir(tmp);
  if (existsSync(final)) {
    const old = path.join(dir, `.old-${name}-${process.pid}`);
    renameSync(final, old);
    renameSync(tmp, final);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, final);
  }
  fsyncDir(dir);
  swapLink(dir, "checkpoint_last", name);
  if (opts.best) swapLink(dir, "checkpoint_best", name);
  fsyncDir(dir);
  prune(dir, opts.keepLast);
  return final;
}

const STEP_DIR = /^checkpoint_(\d+)_(\d+)$/;

function prune(dir: string, keepLast: number): void {
  const pinned = new Set<string>();
  for (const link of ["checkpoint_last", "checkpoint_best"]) {
    try {
      pinned.add(readlinkSync(path.join(dir, link)));
    } catch {
      // not there yet
    }
  }
  for (const f of readdirSync(dir)) {
    if (f.startsWith(".tmp-") && !f.endsWith(`-${process.pid}`))
      rmSync(path.join(dir, f), { recursive: true, force: true });
  }
  if (keepLast <= 0) return;
  const steps = readdirSync(dir)
    .filter((f) => STEP_DIR.test(f))
    .sort(
      (a, b) =>
        Number((STEP_DIR.exec(a) as RegExpExecArray)[2]) - Number((STEP_DIR.exec(b) as RegExpExecArray)[2]),
    );
  for (const f of steps.slice(0, Math.max(0, steps.length - keepLast))) {
    if (!pinned.has(f)) rmSync(path.join(dir, f), { recursive: true, force: true });
  }
}

export interface LoadOptions {
  /** Load weights only: optimizer moments and step start fresh. */
  resetOptimizer?: boolean;
}

/**
 * Loads a checkpoint into `model` (and `optimizer`), after refusing on any
 * architecture difference with a message listing each. Returns the state.
 */
export function loadCheckpoint(
  dir: string,
  model: Transformer,
  optimizer: AdamW | null,
  opts: LoadOptions = {},
): CheckpointState {
  const statePath = path.join(dir, "state.json");
  if (!existsSync(statePath)) {
    throw new TrainError("CHECKPOINT_MISSING", `${dir} is not a checkpoint (no state.json)`);
  }
  let state: CheckpointState;
  try {
    state = JSON.parse(readFileSync(statePath, "utf8")) as CheckpointState;
  } catch (e) {
    throw new TrainError("CHECKPOINT_CORRUPT", `${statePath}: ${(e as Error).message}`);
  }
  if (state.format !== CHECKPOINT_FORMAT) {
    throw new TrainError(
      "CHECKPOINT_CORRUPT",
      `${statePath}: format '${state.format}', expected '${CHECKPOINT_FORMAT}'`,
    );
  }
  const file = SafetensorsFile.open(path.join(dir, "model.safetensors"));
  try {
    const diff = architectureDiff(file, state.model, model);
    if (diff.length > 0) {
      throw new TrainError(
        "ARCHITECTURE_MISMATCH",
        `cannot load ${dir}: the model architecture differs:\n  ${diff.join("\n  ")}\n` +
          "Use the checkpoint's model settings, or start a new run directory.",
      );
    }
    const layout = model.expertLayout();
    tidy(() => {
      for (const [key, v] of model.variables()) {
        const t = readParam(file, key, layout.get(key));
        if (!t) throw new TrainError("CHECKPOINT_CORRUPT", `${dir}: parameter ${key} is missing`);
        v.assign(tensor(t.data, v.shape));
      }
    });
  } finally {
    file.close();
  }
  if (optimizer && !opts.resetOptimizer && state.optimizer) {
    const optFile = SafetensorsFile.open(path.join(dir, "optimizer.safetensors"));
    try {
      const layout = model.expertLayout();
      const tensors = new Map<string, { shape: number[]; values: Float32Array }>();
      for (const key of model.variables().keys()) {
        for (const suffix of [".m", ".v"]) {
          const t = readParam(optFile, key, layout.get(key), suffix);
          if (t) tensors.set(key + suffix, { shape: t.shape, values: t.data });
        }
      }
      optimizer.load({ step: state.optimizer.step, tensors }, model.variables());
    } finally {
      optFile.close();
    }
  }
  return state;
}
