// A resumable pipeline of named stages, each cached on disk.
//
// Stage i's key is sha256(name_i, config_i, key_{i-1}): a stage is done when
// <dir>/stages/<name>.done.json holds its key. Changing a stage's config changes
// its key and so every later key — that stage and everything after it runs again,
// nothing before it does. A stage that was started (started marker with its key)
// but not finished resumes in place (training stages continue from their last
// checkpoint); one started or finished under another key has its directory wiped
// first. Markers and outputs are written atomically (temp file, fsync, rename), the
// done marker last, so a kill at any moment leaves either a finished stage or one
// that reruns.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";

import { writeFileAtomic } from "@polymoe/train";

/** One stage: what identifies its work (config), and the work. */
export interface Stage<Ctx> {
  name: string;
  /** Everything that determines the stage's outputs (JSON-serialisable). */
  config: unknown;
  /**
   * Does the work in `dir` (created before the call; it may hold a previous
   * unfinished attempt of the same key). Resolves to the outputs recorded in the done
   * marker (JSON-serialisable), which later stages read through ctx.outputs.
   */
  run(dir: string, ctx: StageContext<Ctx>): Promise<unknown>;
}

export interface StageContext<Ctx> {
  /** Outputs of the stages before this one, by name. */
  outputs: Record<string, unknown>;
  /** Whether this attempt continues an unfinished one. */
  resumed: boolean;
  extra: Ctx;
  log: (line: string) => void;
}

export interface DoneMarker {
  stage: string;
  key: string;
  finishedAt: string;
  seconds: number;
  outputs: unknown;
}

export interface StageEvent {
  stage: string;
  index: number;
  total: number;
  action: "cached" | "run" | "resume" | "invalidated";
  key: string;
}

export interface RunStagesOptions<Ctx> {
  log?: (line: string) => void;
  /** Called before each stage with what is about to happen. */
  onStage?: (e: StageEvent) => void;
  /** Stop after this stage (inclusive); later stages are left as they are. */
  until?: string;
  extra: Ctx;
}

export interface RunStagesResult {
  outputs: Record<string, unknown>;
  /** Per stage: what happened in this invocation. */
  actions: Record<string, StageEvent["action"] | "skipped">;
}

/** JSON with object keys sorted, so that a config hashes the same however it was written. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(",")}}`;
}

/** The chained key of a stage (see the file comment). */
export function stageKey(name: string, config: unknown, previous: string): string {
  return createHash("sha256").update(canonicalJson({ name, config, previous })).digest("hex").slice(0, 16);
}

const markerDir = (dir: string) => path.join(dir, "stages");
export const doneFile = (dir: string, name: string) => path.join(markerDir(dir), `${name}.done.json`);
export const startedFile = (dir: string, name: string) => path.join(markerDir(dir), `${name}.started.json`);

function readJson<T>(file: string): T | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as T;
  } catch {
    return undefined; // a marker is written atomically; unreadable = absent
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, [Buffer.from(`${JSON.stringify(value, null, 2)}\n`)]);
}

/** The done marker of a stage, if it finished (under any key). */
export function readDone(dir: string, name: string): DoneMarker | undefined {
  return readJson<DoneMarker>(doneFile(dir, name));
}

/**
 * Runs the stages in order under `dir`, skipping finished ones whose key matches,
 * resuming an unfinished one, and wiping and rerunning those whose key changed.
 * Stage names must be unique path-safe words; each stage works in <dir>/<name>.
 */
export async function runStages<Ctx>(
  dir: string,
  stages: readonly Stage<Ctx>[],
  opts: RunStagesOptions<Ctx>,
): Promise<RunStagesResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const names = new Set<string>();
  for (const s of stages) {
    if (!/^[A-Za-z0-9][\w.-]*$/.test(s.name))
      throw new Error(`stage name '${s.name}' is not a path-safe word`);
    if (names.has(s.name)) throw new Error(`stage '${s.name}' is listed twice`);
    names.add(s.name);
  }
  if (opts.until !== undefined && !names.has(opts.until)) {
    throw new Error(`--until '${opts.until}': no such stage; stages are ${[...names].join(", ")}`);
  }
  mkdirSync(markerDir(dir), { recursive: true });
  const outputs: Record<string, unknown> = {};
  const actions: RunStagesResult["actions"] = {};
  let previous = "";
  let stopped = false;
  for (const [index, stage] of stages.entries()) {
    if (stopped) {
      actions[stage.name] = "skipped";
      continue;
    }
    const key = stageKey(stage.name, stage.config, previous);
    previous = key;
    const stageDir = path.join(dir, stage.name);
    const done = readDone(dir, stage.name);
    const started = readJson<{ key: string }>(startedFile(dir, stage.name));
    const event = (action: StageEvent["action"]): StageEvent => ({
      stage: stage.name,
      index,
      total: stages.length,
      action,
      key,
    });
    if (done?.key === key) {
      outputs[stage.name] = done.outputs;
      actions[stage.name] = "cached";
      opts.onStage?.(event("cached"));
    } else {
      const stale = (done && done.key !== key) || (started && started.key !== key);
      const resumed = !stale && started?.key === key && existsSync(stageDir);
      const action = stale ? "invalidated" : resumed ? "resume" : "run";
      actions[stage.name] = action;
      opts.onStage?.(event(action));
      if (!resumed) {
        // Markers first: a kill during the wipe leaves a stage that reruns from scratch.
        rmSync(doneFile(dir, stage.name), { force: true });
        rmSync(startedFile(dir, stage.name), { force: true });
        rmSync(stageDir, { recursive: true, force: true });
      }
      mkdirSync(stageDir, { recursive: true });
      writeJsonAtomic(startedFile(dir, stage.name), {
        stage: stage.name,
        key,
        startedAt: new Date().toISOString(),
      });
      const t0 = performance.now();
      const out = await stage.run(stageDir, { outputs, resumed, extra: opts.extra, log });
      const marker: DoneMarker = {
        stage: stage.name,
        key,
        finishedAt: new Date().toISOString(),
        seconds: (performance.now() - t0) / 1000,
        outputs: out ?? null,
      };
      writeJsonAtomic(doneFile(dir, stage.name), marker);
      outputs[stage.name] = marker.outputs;
    }
    if (opts.until === stage.name) stopped = true;
  }
  return { outputs, actions };
}
