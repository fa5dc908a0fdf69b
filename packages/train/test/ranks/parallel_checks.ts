// What a parallel training run must match: its one-process reference on the
// same global batches (shared by the simulated and the mpirun tests).
import { cpSync, mkdirSync, symlinkSync } from "node:fs";
import path from "node:path";
import { Transformer } from "@polymoe/model";
import { expect } from "vitest";

import { loadCheckpoint } from "../../src/index.js";
import { type RunResult, type RunSpec, referenceRun, tinyModel } from "./parallel_train.js";

/** The layouts tested at a world size (names say what they exercise). */
export function layouts(worldSize: number): Omit<RunSpec, "steps" | "runDir">[] {
  if (worldSize === 2) {
    return [
      { name: "dp2-accumulate2", parallel: { ep: 1, tp: 1, zeroStage: 0 }, accumulate: 2 },
      { name: "dp2-zero2", parallel: { ep: 1, tp: 1, zeroStage: 2 }, accumulate: 1 },
      { name: "ep2", parallel: { ep: 2, tp: 1, zeroStage: 0 }, accumulate: 1 },
      { name: "ep2-zero1", parallel: { ep: 2, tp: 1, zeroStage: 1 }, accumulate: 1 },
      { name: "tp2", parallel: { ep: 1, tp: 2, zeroStage: 0 }, accumulate: 1 },
    ];
  }
  return [
    { name: "ep2-dp4", parallel: { ep: 2, tp: 1, zeroStage: 0 }, accumulate: 1 },
    { name: "ep2-dp4-zero2", parallel: { ep: 2, tp: 1, zeroStage: 2 }, accumulate: 1 },
    { name: "ep4-zero2", parallel: { ep: 4, tp: 1, zeroStage: 2 }, accumulate: 1 },
    { name: "tp2-ep2-zero1", parallel: { ep: 2, tp: 2, zeroStage: 1 }, accumulate: 1 },
  ];
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
};

/**
 * res[rank][run]: every rank reports the same losses and gradient norms as the
 * reference (G = dp * accumulate micro-batches per step), and the run's final
 * checkpoint, loaded into one process, holds the reference's parameters.
 */
export async function checkAgainstReference(
  specs: RunSpec[],
  res: RunResult[][],
  worldSize: number,
  tmp: (name: string) => string,
): Promise<void> {
  const refs = new Map<number, Awaited<ReturnType<typeof referenceRun>>>();
  for (const [i, spec] of specs.entries()) {
    const dp = worldSize / spec.parallel.tp;
    const G = dp * spec.accumulate;
    let ref = refs.get(G);
    if (!ref) {
      ref = await referenceRun(spec.steps, G, tmp(`reference-${G}`));
      refs.set(G, ref);
    }
    for (const perRank of res) {
      const r = perRank[i] as RunResult;
      expect(r.name).toBe(spec.name);
      expect(r.leaked, `${spec.name} rank ${r.rank}: tensors leaked`).toBe(0);
      expect(maxDiff(r.losses, ref.losses), `${spec.name} rank ${r.rank}: losses`).toBeLessThan(1e-5);
      expect(maxDiff(r.gradNorms, ref.gradNorms), `${spec.name} rank ${r.rank}: gradient norms`).toBeLessThan(
        1e-5,
      );
      // Communication happened where the layout says, and nowhere else.
      expect(r.comm.allToAll > 0, `${spec.name}: all-to-all time`).toBe(spec.parallel.ep > 1);
      expect(r.commCalls.ep > 0).toBe(spec.parallel.ep > 1);
      expect(r.commCalls.tp > 0).toBe(spec.parallel.tp > 1);
      expect(r.comm.allGather > 0).toBe(spec.parallel.zeroStage > 0);
    }
    const dir = (res[0] as RunResult[])[i]?.lastCheckpoint as string;
    const loaded = new Transformer(tinyModel, { seed: 99, namespace: `loaded.${spec.name}.${Date.now()}` });
    loadCheckpoint(dir, loaded, null);
    for (const [k, v] of ref.model.variables()) {
      const got = loaded.variables().get(k)!.dataSync();
      expect(
        maxDiff(got, v.dataSync()),
        `${spec.name}: parameter ${k} after ${spec.steps} steps`,
      ).toBeLessThan(1e-5);
    }
    loaded.dispose();
  }
  for (const r of refs.values()) {
    r.trainer.dispose();
    r.model.dispose();
  }
}

/** A fresh run directory whose checkpoint_last is a copy of `checkpoint`. */
export function runDirWithCheckpoint(checkpoint: string, dir: string): string {
  const dst = path.join(dir, "checkpoints", path.basename(checkpoint));
  mkdirSync(path.dirname(dst), { recursive: true });
  cpSync(checkpoint, dst, { recursive: true });
  symlinkSync(path.basename(checkpoint), path.join(dir, "checkpoints", "checkpoint_last"));
  return dir;
}

/** Runs of the resharding check: save at EP=4 / ZeRO-2 on 4 ranks (step 5), go on to step 7. */
export const reshardSave = (runDir: string): RunSpec => ({
  name: "reshard-ep4-zero2",
  parallel: { ep: 4, tp: 1, zeroStage: 2 },
  accumulate: 1,
  steps: 7,
  saveEvery: 5,
  runDir,
});

/** Resumed from step 5 on 2 ranks at EP=2, ZeRO-1 (other stage, shards regathered), 2 micro-batches each. */
export const reshardResume = (runDir: string): RunSpec => ({
  name: "reshard-ep2-zero1",
  parallel: { ep: 2, tp: 1, zeroStage: 1 },
  accumulate: 2,
  steps: 7,
  resume: true,
  runDir,
});

/** The parameters of a checkpoint, loaded into one process. */
function loadParams(dir: string): Map<string, Float32Array> {
  const m = new Transformer(tinyModel, { seed: 99, namespace: `params.${Date.now()}.${Math.random()}` });
  loadCheckpoint(dir, m, null);
  const out = new Map([...m.variables()].map(([k, v]) => [k, Float32Array.from(v.dataSync())]));
  m.dispose();
  return out;
}

/**
 * After resuming from step 5, the losses of steps 6 and 7 (step 7's depends on
 * the Adam moments loaded with the checkpoint) and the parameters after step
 * 7 equal the uninterrupted run's, on 2 ranks and in one process.
 */
export async function checkReshard(saved: RunResult[], resumed: RunResult[], runDir: string): Promise<void> {
  const want = saved[0]!.losses.slice(5);
  expect(saved[0]!.losses).toHaveLength(7);
  const final = loadParams(saved[0]!.lastCheckpoint);
  const sameParams = (dir: string, who: string) => {
    for (const [k, v] of loadParams(dir)) {
      expect(maxDiff(v, final.get(k)!), `${who}: ${k} after step 7`).toBeLessThan(1e-5);
    }
  };
  for (const r of resumed) {
    expect(r.losses, "the resumed run trains steps 6 and 7").toHaveLength(2);
    expect(maxDiff(r.losses, want), `EP=2 rank ${r.rank}: losses of steps 6 and 7`).toBeLessThan(1e-5);
    expect(maxDiff(r.gradNorms, saved[0]!.gradNorms.slice(5))).toBeLessThan(1e-5);
  }
  sameParams(resumed[0]!.lastCheckpoint, "EP=2");
  const one = await referenceRun(7, 4, runDir, { resume: true });
  expect(maxDiff(one.losses, want), "one process: losses of steps 6 and 7").toBeLessThan(1e-5);
  for (const [k, v] of one.model.variables()) {
    expect(maxDiff(v.dataSync(), final.get(k)!), `one process: ${k} after step 7`).toBeLessThan(1e-5);
  }
  one.trainer.dispose();
  one.model.dispose();
}
