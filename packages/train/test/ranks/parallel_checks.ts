// What a parallel training run must match: its one-process reference on the
// same global batches (shared by the simulated and the mpirun tests).
import { Transformer } from "@polymoe/model";
import { expect } from "vitest";

import { loadCheckpoint } from "../../src/index.js";
import { type RunResult, type RunSpec, referenceRun, tinyModel } from "./parallel_train.js";

/** The layouts tested at a world size (names say what they exercise). */
export function layouts(worldSize: number): Omit<RunSpec, "steps" | "runDir">[] {
  if (worldSize === 2) {
    return [
      { name: "dp2-accumulate2", parallel: { ep: 1, tp: 1, zeroStage: 0 }, accumulate: 2 },
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
