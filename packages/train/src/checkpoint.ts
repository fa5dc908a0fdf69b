// Checkpoints, fairseq style: a directory per save (checkpoint_<epoch>_<step>)
// holding model.safetensors, optimizer.safetensors and state.json, with
// checkpoint_last and checkpoint_best as symlinks swapped atomically. A save
// is built in a temporary directory, fsynced, then renamed into place, so a
// process killed mid-save leaves the previous checkpoint intact.
//
// Expert weights are stored one tensor per global expert id
// ("decoder.layers.1.ffn.experts.<id>.w1"), whatever the expert-parallel
// layout of the run that saved them.
//
// A run over several ranks writes one shard per rank into the same directory:
// model.rank<r>.safetensors (rank 0: dense parameters; the ranks of the first
// expert-data-parallel replica: their experts, tensor slices joined),
// optimizer.rank<r>.safetensors (the moments each rank holds, as pieces
// "<name>.m@<offset>" of the flattened tensor, "#k/n" for a tensor slice;
// replicated state written once) and rank<r>.json (its RNG and data
// position); rank 0 writes state.json last. Readers see the union of the
// files (TensorSet), so a checkpoint loads under any layout: another number
// of ranks, ep or ZeRO stage (tensor-sliced moments need the same tp).
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs";
import path from "node:path";

import type { ExpertLayout, Transformer } from "@polymoe/model";
import { PagedExperts } from "@polymoe/offload";
import { tensor, tidy, type Variable } from "@tensorflow/tfjs-core";

import { TrainError } from "./errors.js";
import type { OptimizerState, TrainOptimizer } from "./optimizer.js";
import {
  type FlatSegment,
  localMoment,
  type MomentSource,
  type ParallelRuntime,
  type ShardedOptimizer,
} from "./parallel.js";
import {
  fsyncDir,
  type LazyTensorEntry,
  SafetensorsFile,
  type TensorEntry,
  writeFileAtomic,
  writeSafetensors,
  writeSafetensorsLazy,
} from "./safetensors.js";
import { expertName, joinSlices, takeSlice } from "./tensor_layout.js";

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
  /** The layout of a run over several ranks (absent: one process; rng and data above). */
  parallel?: CheckpointLayout;
}

/** How the ranks of a parallel run that saved a checkpoint were laid out. */
export interface CheckpointLayout {
  worldSize: number;
  dp: number;
  ep: number;
  tp: number;
  zeroStage: 0 | 1 | 2;
}

/** rank<r>.json of a parallel checkpoint: what differs per rank. */
export interface RankState {
  rank: number;
  dpIndex: number;
  tpIndex: number;
  rng: number[];
  data: unknown;
}

/** The tensors of a checkpoint part, whichever files hold them (see TensorSet). */
export interface TensorReader {
  names(): string[];
  has(name: string): boolean;
  shape(name: string): number[];
  read(name: string): TensorEntry;
}

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

/**
 * Reads `key` for the local layout: plain, or stacked from per-expert tensors
 * (of this rank's experts, this rank's tensor slice taken).
 */
function readParam(file: TensorReader, key: string, lay: ExpertLayout | undefined): Float32Array | null {
  if (!lay) return file.has(key) ? (file.read(key).data as Float32Array) : null;
  const parts: Float32Array[] = [];
  for (let i = 0; i < lay.localExperts; i++) {
    const name = expertName(key, lay.firstExpert + i);
    if (!file.has(name)) return null;
    const t = file.read(name);
    const data = t.data as Float32Array;
    parts.push(lay.slice ? takeSlice(data, t.shape, lay.slice.axis, lay.slice.rank, lay.slice.size) : data);
  }
  const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.length;
  }
  return data;
}

/** The per-expert shape of an expert parameter over the whole layer (tensor slices joined). */
function fullExpertShape(v: Variable, lay: ExpertLayout): number[] {
  const shape = v.shape.slice(1);
  if (lay.slice) shape[lay.slice.axis] = (shape[lay.slice.axis] as number) * lay.slice.size;
  return shape;
}

const PART_FILE = (part: string) => new RegExp(`^${part}(?:\\.rank(\\d+))?\\.safetensors$`);

/**
 * Every tensor of a checkpoint part ("model" or "optimizer") over its files:
 * <part>.safetensors (one process) and/or <part>.rank<r>.safetensors (one per
 * writing rank of a parallel run). Names must be unique across the files.
 */
export class TensorSet implements TensorReader {
  private readonly where = new Map<string, SafetensorsFile>();

  private constructor(
    readonly dir: string,
    readonly files: SafetensorsFile[],
  ) {
    for (const f of files) {
      for (const n of f.names()) {
        const other = this.where.get(n);
        if (other) {
          throw new TrainError(
            "CHECKPOINT_CORRUPT",
            `${dir}: tensor ${n} is in both ${path.basename(other.file)} and ${path.basename(f.file)}`,
          );
        }
        this.where.set(n, f);
      }
    }
  }

  /** The files of `part` in `dir` (none: an empty list). */
  static partFiles(dir: string, part: "model" | "optimizer"): string[] {
    if (!existsSync(dir)) return [];
    const re = PART_FILE(part);
    return readdirSync(dir)
      .filter((f) => re.test(f))
      .sort()
      .map((f) => path.join(dir, f));
  }

  static open(dir: string, part: "model" | "optimizer"): TensorSet {
    const files = TensorSet.partFiles(dir, part);
    if (files.length === 0) {
      throw new TrainError(
        "CHECKPOINT_MISSING",
        `${dir}: no ${part}.safetensors (nor ${part}.rank<r>.safetensors shards); not a complete checkpoint`,
      );
    }
    const opened: SafetensorsFile[] = [];
    try {
      for (const f of files) opened.push(SafetensorsFile.open(f));
      return new TensorSet(dir, opened);
    } catch (e) {
      for (const f of opened) f.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  shape(name: string): number[] {
    const f = this.where.get(name);
    if (!f) throw new TrainError("CHECKPOINT_CORRUPT", `${this.dir} has no tensor ${name}`);
    return f.shape(name);
  }

  read(name: string): TensorEntry {
    const f = this.where.get(name);
    if (!f) throw new TrainError("CHECKPOINT_CORRUPT", `${this.dir} has no tensor ${name}`);
    return f.read(name);
  }

  /** Bytes of tensor data read so far, over all files. */
  get bytesRead(): number {
    return this.files.reduce((n, f) => n + f.bytesRead, 0);
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

/** Opens the model tensors of a checkpoint directory (one file or per-rank shards). */
export function openModelTensors(dir: string): TensorSet {
  return TensorSet.open(dir, "model");
}

/** Bytes of a checkpoint's model files (one file or per-rank shards). */
export function modelBytes(dir: string): number {
  return TensorSet.partFiles(dir, "model").reduce((n, f) => n + statSync(f).size, 0);
}

const PIECE = /^(.*)\.(m|v)@(\d+)(?:#(\d+\/\d+))?$/;
const WHOLE = /^(.*)\.(m|v)$/;

/**
 * Optimizer moments from a checkpoint's optimizer files: whole tensors
 * ("<name>.m", one process) or pieces ("<name>.m@<offset>[#k/n]", parallel
 * runs), assembled into the full flattened moment on request.
 */
export function momentSource(set: TensorReader): MomentSource {
  const pieces = new Map<string, { entry: string; offset: number }[]>();
  const add = (name: string, moment: string, tp: string, entry: string, offset: number) => {
    const k = `${name}|${moment}|${tp}`;
    const list = pieces.get(k) ?? [];
    list.push({ entry, offset });
    pieces.set(k, list);
  };
  for (const n of set.names()) {
    const p = PIECE.exec(n);
    if (p) add(p[1] as string, p[2] as string, p[4] ?? "", n, Number(p[3]));
    else {
      const w = WHOLE.exec(n);
      if (w) add(w[1] as string, w[2] as string, "", n, 0);
    }
  }
  return (name, moment, numel, tp) => {
    const list = pieces.get(`${name}|${moment}|${tp ?? ""}`);
    if (!list) return null;
    const out = new Float32Array(numel);
    let covered = 0;
    for (const { entry, offset } of [...list].sort((a, b) => a.offset - b.offset)) {
      const data = set.read(entry).data as Float32Array;
      if (offset !== covered || offset + data.length > numel) {
        throw new TrainError(
          "CHECKPOINT_CORRUPT",
          `optimizer state '${name}.${moment}'${tp ? ` (part ${tp})` : ""}: piece ${entry} covers ` +
            `[${offset}, ${offset + data.length}) but ${covered} elements of ${numel} were covered before it`,
        );
      }
      out.set(data, offset);
      covered += data.length;
    }
    return covered === numel ? out : null;
  };
}

/** Global expert count per expert parameter stored in a checkpoint. */
function storedExperts(file: TensorReader): Map<string, number> {
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
export function architectureDiff(file: TensorReader, savedConfig: unknown, model: Transformer): string[] {
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
        const want = fullExpertShape(v, lay);
        if (shape.join() !== want.join()) {
          lines.push(`parameter ${key}: checkpoint expert shape [${shape}], this run [${want}]`);
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
  /**
   * Extra files written into every checkpoint with it (atomically: they appear
   * together), e.g. the tokenizer.json a checkpoint needs to be used alone.
   */
  files?: Readonly<Record<string, Uint8Array>>;
}

function writeExtraFiles(dir: string, files: SaveOptions["files"]): void {
  for (const [name, data] of Object.entries(files ?? {})) {
    if (
      name.includes("/") ||
      name.startsWith(".") ||
      name === "state.json" ||
      name.endsWith(".safetensors")
    ) {
      throw new TrainError(
        "INVALID_CONFIG",
        `checkpoint file name '${name}' is reserved or not a plain file name`,
      );
    }
    writeFileAtomic(path.join(dir, name), [data]);
  }
}

/**
 * Saves model, optimizer and state atomically as checkpoint_<epoch>_<step>
 * and points checkpoint_last (and checkpoint_best) at it. Returns its path.
 */
export function saveCheckpoint(
  runDir: string,
  model: Transformer,
  optimizer: TrainOptimizer | null,
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
  const pager = model.pager instanceof PagedExperts ? model.pager : null;
  if (pager) {
    // Paged experts stream from their store into the files one expert at a time,
    // in the same per-expert layout as resident experts.
    const tensors: Map<string, TensorEntry | LazyTensorEntry> = modelTensors(model);
    const moments: Map<string, TensorEntry | LazyTensorEntry> = optimizer
      ? optimizerTensors(model, optimizer.state())
      : new Map();
    addPagedTensors(pager, tensors, optimizer ? moments : null);
    writeSafetensorsLazy(path.join(tmp, "model.safetensors"), tensors, { format: CHECKPOINT_FORMAT });
    if (optimizer) {
      writeSafetensorsLazy(path.join(tmp, "optimizer.safetensors"), moments, { format: CHECKPOINT_FORMAT });
    }
  } else {
    writeSafetensors(path.join(tmp, "model.safetensors"), modelTensors(model), { format: CHECKPOINT_FORMAT });
    if (optimizer) {
      writeSafetensors(path.join(tmp, "optimizer.safetensors"), optimizerTensors(model, optimizer.state()), {
        format: CHECKPOINT_FORMAT,
      });
    }
  }
  writeFileAtomic(path.join(tmp, "state.json"), [Buffer.from(`${JSON.stringify(state, null, 2)}\n`)]);
  writeExtraFiles(tmp, opts.files);
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

/**
 * Adds the paged experts' parameters (and moments: zeros for experts never
 * updated) under the names resident experts get, read lazily one expert at a
 * time (the writer visits one expert's parts back to back).
 */
function addPagedTensors(
  pager: PagedExperts,
  params: Map<string, TensorEntry | LazyTensorEntry>,
  moments: Map<string, TensorEntry | LazyTensorEntry> | null,
): void {
  let memo: { key: string; value: ReturnType<PagedExperts["expert"]> } | null = null;
  const get = (layer: string, e: number) => {
    const key = `${layer}|${e}`;
    if (memo?.key !== key) memo = { key, value: pager.expert(layer, e) };
    return memo.value;
  };
  for (const { name, numExperts, parts } of pager.layout()) {
    for (let e = 0; e < numExperts; e++) {
      for (const { part, shape } of parts) {
        const full = expertName(`${name}.${part}`, e);
        const n = shape.reduce((a, b) => a * b, 1);
        params.set(full, { dtype: "F32", shape, read: () => get(name, e).params[part] });
        if (!moments) continue;
        moments.set(`${full}.m`, {
          dtype: "F32",
          shape,
          read: () => get(name, e).m?.[part] ?? new Float32Array(n),
        });
        moments.set(`${full}.v`, {
          dtype: "F32",
          shape,
          read: () => get(name, e).v?.[part] ?? new Float32Array(n),
        });
      }
    }
  }
}

/**
 * Restores paged experts from a checkpoint's model file (and optimizer file
 * unless `optimizer` is null): every expert of every layer, one at a time.
 */
function loadPaged(
  dir: string,
  pager: PagedExperts,
  file: TensorReader,
  optimizer: TensorReader | null,
): void {
  for (const { name, numExperts, parts } of pager.layout()) {
    for (let e = 0; e < numExperts; e++) {
      const params: Record<string, Float32Array> = {};
      const m: Record<string, Float32Array> = {};
      const v: Record<string, Float32Array> = {};
      let moments = optimizer !== null;
      for (const { part } of parts) {
        const full = expertName(`${name}.${part}`, e);
        if (!file.has(full)) {
          throw new TrainError(
            "ARCHITECTURE_MISMATCH",
            `cannot load ${dir}: paged expert parameter ${full} is missing (the checkpoint's ${name} has fewer ` +
              `than ${numExperts} experts, or no such layer)`,
          );
        }
        params[part] = file.read(full).data as Float32Array;
        if (optimizer?.has(`${full}.m`) && optimizer.has(`${full}.v`)) {
          m[part] = optimizer.read(`${full}.m`).data as Float32Array;
          v[part] = optimizer.read(`${full}.v`).data as Float32Array;
        } else moments = false;
      }
      pager.load(name, e, params, moments ? m : null, moments ? v : null);
    }
  }
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
  optimizer: TrainOptimizer | ShardedOptimizer | null,
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
  const file = openModelTensors(dir);
  try {
    const diff = architectureDiff(file, state.model, model);
    if (diff.length > 0) {
      throw new TrainError(
        "ARCHITECTURE_MISMATCH",
        `cannot load ${dir}: the model architecture differs:\n  ${diff.join("\n  ")}\n` +
          "Use the checkpoint's model settings, start a new run directory, or train from scratch here with --fresh.",
      );
    }
    const layout = model.expertLayout();
    tidy(() => {
      for (const [key, v] of model.variables()) {
        const data = readParam(file, key, layout.get(key));
        if (!data) throw new TrainError("CHECKPOINT_CORRUPT", `${dir}: parameter ${key} is missing`);
        v.assign(tensor(data, v.shape));
      }
    });
    const pager = model.pager instanceof PagedExperts ? model.pager : null;
    if (pager) {
      const restoreMoments = !!optimizer && !opts.resetOptimizer && !!state.optimizer;
      const set = restoreMoments ? TensorSet.open(dir, "optimizer") : null;
      try {
        loadPaged(dir, pager, file, set);
      } finally {
        set?.close();
      }
      pager.step = restoreMoments ? (state.optimizer?.step ?? 0) : 0;
    }
  } finally {
    file.close();
  }
  if (optimizer && !opts.resetOptimizer && state.optimizer) {
    const set = TensorSet.open(dir, "optimizer");
    try {
      const read = momentSource(set);
      if ("loadMoments" in optimizer) optimizer.loadMoments(read, state.optimizer.step);
      else {
        const layout = model.expertLayout();
        const tensors = new Map<string, { shape: number[]; values: Float32Array }>();
        for (const [key, v] of model.variables()) {
          const lay = layout.get(key);
          const seg: FlatSegment = {
            key,
            variable: v,
            offset: 0,
            size: v.size,
            decay: 0,
            tpReplicated: !lay?.slice,
            ...(lay ? { expert: lay } : {}),
          };
          for (const moment of ["m", "v"] as const) {
            const values = localMoment(read, seg, moment);
            if (values) tensors.set(`${key}.${moment}`, { shape: v.shape.slice(), values });
          }
        }
        optimizer.load({ step: state.optimizer.step, tensors }, model.variables());
      }
    } finally {
      set.close();
    }
  }
  return state;
}

/** The per-rank states of a parallel checkpoint (rank<r>.json), in rank order; empty for one process. */
export function readRankStates(dir: string): RankState[] {
  const out: RankState[] = [];
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir)) {
    const m = /^rank(\d+)\.json$/.exec(f);
    if (!m) continue;
    try {
      out[Number(m[1])] = JSON.parse(readFileSync(path.join(dir, f), "utf8")) as RankState;
    } catch (e) {
      throw new TrainError("CHECKPOINT_CORRUPT", `${path.join(dir, f)}: ${(e as Error).message}`);
    }
  }
  return out.filter((r) => r !== undefined);
}

/**
 * The model tensors rank `rt` writes: rank 0 the dense parameters; the ranks
 * of the first expert-data-parallel replica (edpIndex 0) their experts by
 * global id, tensor slices joined over the tp group (a collective among those
 * ranks; tp index 0 writes).
 */
async function modelShard(rt: ParallelRuntime, model: Transformer): Promise<Map<string, TensorEntry>> {
  const out = new Map<string, TensorEntry>();
  const layout = model.expertLayout();
  const { coords, groups } = rt;
  for (const [key, v] of model.variables()) {
    const lay = layout.get(key);
    if (!lay) {
      if (groups.world.rank === 0) {
        out.set(key, {
          dtype: "F32",
          shape: v.shape.slice(),
          data: Float32Array.from(v.dataSync() as Float32Array),
        });
      }
      continue;
    }
    if (coords.edpIndex !== 0) continue;
    const data = Float32Array.from(v.dataSync() as Float32Array);
    const shape = fullExpertShape(v, lay);
    const per = data.length / lay.localExperts;
    let parts: Float32Array[] | null = null;
    if (lay.slice) {
      const all = await groups.tp.allGather(data);
      parts = [...Array(lay.slice.size).keys()].map((k) =>
        all.subarray(k * data.length, (k + 1) * data.length),
      );
    }
    if (coords.tpIndex !== 0) continue;
    for (let i = 0; i < lay.localExperts; i++) {
      if (parts && lay.slice) {
        const joined = joinSlices(
          parts.map((p) => p.subarray(i * per, (i + 1) * per)),
          v.shape.slice(1),
          lay.slice.axis,
        );
        out.set(expertName(key, lay.firstExpert + i), { dtype: "F32", shape, data: joined });
      } else {
        out.set(expertName(key, lay.firstExpert + i), {
          dtype: "F32",
          shape,
          data: data.slice(i * per, (i + 1) * per),
        });
      }
    }
  }
  return out;
}

/** What each rank adds to a parallel checkpoint besides the shared state. */
export interface ParallelSaveInput {
  runtime: ParallelRuntime;
  optimizer: ShardedOptimizer;
  /** This rank's RNG state and data position. */
  rng: number[];
  data: unknown;
}

/**
 * Saves a parallel run's checkpoint (a collective: every rank calls it with
 * the same state): every rank writes its shard into one temporary directory,
 * then rank 0 writes state.json, renames the directory into place and moves
 * checkpoint_last (and checkpoint_best). Resolves on every rank once the
 * checkpoint is complete. Needs a directory all ranks share.
 */
export async function saveParallelCheckpoint(
  runDir: string,
  model: Transformer,
  state: CheckpointState,
  input: ParallelSaveInput,
  opts: SaveOptions,
): Promise<string> {
  const { runtime: rt } = input;
  const world = rt.groups.world;
  const dir = checkpointsDir(runDir);
  const name = `checkpoint_${state.epoch}_${state.step}`;
  const final = path.join(dir, name);
  const tmp = path.join(dir, `.tmp-${name}-ranks${world.size}`);
  if (world.rank === 0) {
    mkdirSync(dir, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    writeExtraFiles(tmp, opts.files);
  }
  await world.barrier();
  const r = world.rank;
  const tensors = await modelShard(rt, model);
  if (tensors.size > 0) {
    writeSafetensors(path.join(tmp, `model.rank${r}.safetensors`), tensors, { format: CHECKPOINT_FORMAT });
  }
  const pieces = new Map<string, TensorEntry>();
  for (const p of input.optimizer.momentPieces()) {
    const tag = `@${p.offset}${p.tp ? `#${p.tp}` : ""}`;
    pieces.set(`${p.name}.m${tag}`, { dtype: "F32", shape: [p.m.length], data: p.m });
    pieces.set(`${p.name}.v${tag}`, { dtype: "F32", shape: [p.v.length], data: p.v });
  }
  if (pieces.size > 0) {
    writeSafetensors(path.join(tmp, `optimizer.rank${r}.safetensors`), pieces, { format: CHECKPOINT_FORMAT });
  }
  const rankState: RankState = {
    rank: r,
    dpIndex: rt.coords.dpIndex,
    tpIndex: rt.coords.tpIndex,
    rng: input.rng,
    data: input.data,
  };
  writeFileAtomic(path.join(tmp, `rank${r}.json`), [Buffer.from(`${JSON.stringify(rankState)}\n`)]);
  await world.barrier();
  if (r === 0) {
    const layout = rt.groups.layout;
    const full: CheckpointState = {
      ...state,
      parallel: {
        worldSize: layout.worldSize,
        dp: layout.dp,
        ep: layout.ep,
        tp: layout.tp,
        zeroStage: rt.config.zeroStage,
      },
    };
    writeFileAtomic(path.join(tmp, "state.json"), [Buffer.from(`${JSON.stringify(full, null, 2)}\n`)]);
    fsyncDir(tmp);
    if (existsSync(final)) {
      const old = path.join(dir, `.old-${name}-${process.pid}`);
      renameSync(final, old);
      renameSync(tmp, final);
      rmSync(old, { recursive: true, force: true });
    } else renameSync(tmp, final);
    fsyncDir(dir);
    swapLink(dir, "checkpoint_last", name);
    if (opts.best) swapLink(dir, "checkpoint_best", name);
    fsyncDir(dir);
    prune(dir, opts.keepLast);
  }
  await world.barrier();
  return final;
}
