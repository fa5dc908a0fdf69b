// The real MoE layer expert-parallel (and tensor-sliced) over simulated ranks
// against its one-process reference: outputs, input gradients and parameter
// gradients, expert gradients included (EP=1 vs EP=2 and 4).
import { describe, expect, it } from "vitest";

import { runSimulated } from "../src/index.js";
import { backendReady } from "./ranks/backend.js";
import {
  type LayerResult,
  type MoeLayerArgs,
  type moeLayerRank,
  moeLayerReference,
} from "./ranks/moe_layer.js";
import { maxAbsDiff } from "./ranks/util.js";

type RankOut = Awaited<ReturnType<typeof moeLayerRank>>[number];

const base: MoeLayerArgs = {
  ep: 1,
  tp: 1,
  experts: 4,
  tokens: 9,
  dModel: 6,
  dFF: 8,
  seed: 3,
  // Below 1 so experts overflow and ranks send different counts per expert.
  capacityFactor: 0.75,
};

/** Per-expert slice [e] of a stacked [E, ...] gradient. */
function expertSlice(g: number[], E: number, e: number): number[] {
  const per = g.length / E;
  return g.slice(e * per, (e + 1) * per);
}

/** Column slice k of size parts along `axis` of a per-expert tensor of `shape`. */
function tpSlice(g: number[], shape: number[], axis: number, k: number, parts: number): number[] {
  const [rows, cols] = shape.length === 2 ? shape : [1, shape[0]!];
  if (shape.length === 1 || axis === 1) {
    const w = cols! / parts;
    const out: number[] = [];
    for (let r = 0; r < rows!; r++) out.push(...g.slice(r * cols! + k * w, r * cols! + (k + 1) * w));
    return out;
  }
  const h = rows! / parts;
  return g.slice(k * h * cols!, (k + 1) * h * cols!);
}

function check(res: RankOut[], a: MoeLayerArgs): void {
  const dp = res.length / a.tp;
  const refs: LayerResult[] = [...Array(dp).keys()].map((d) => moeLayerReference(a, d));
  const ep = a.ep;
  const { experts: E, dModel: M, dFF: F } = a;
  for (const o of res) {
    expect(o.leaked).toBe(0);
    const ref = refs[o.coords.dpIndex]!;
    expect(maxAbsDiff(o.y, ref.y)).toBeLessThan(2e-5);
    expect(maxAbsDiff(o.dx, ref.dx)).toBeLessThan(2e-5);
    // Router gradients: this rank's tokens only (data-parallel reduction comes later).
    expect(maxAbsDiff(o.grads["router.gate"]!, ref.grads["router.gate"]!)).toBeLessThan(2e-5);
    // Expert gradients on their owner: the sum over the tokens of every rank of its ep group.
    const group = refs.filter((_, d) => Math.floor(d / ep) === Math.floor(o.coords.dpIndex / ep));
    expect(group.length).toBe(ep);
    const shapes: Record<string, number[]> = { w1: [M, F], b1: [F], w2: [F, M], b2: [M] };
    const axes: Record<string, number | null> = { w1: 1, b1: 0, w2: 0, b2: null };
    for (const k of ["w1", "b1", "w2", "b2"]) {
      const mine = o.grads[`experts.${k}`]!;
      for (let l = 0; l < o.localExperts; l++) {
        const e = o.firstExpert + l;
        const summed = expertSlice(group[0]!.grads[`experts.${k}`]!, E, e).map((_, i) =>
          group.reduce((s, g) => s + expertSlice(g.grads[`experts.${k}`]!, E, e)[i]!, 0),
        );
        const want =
          a.tp > 1 && axes[k] !== null
            ? tpSlice(summed, shapes[k]!, axes[k]!, o.coords.tpIndex, a.tp)
            : summed;
        expect(maxAbsDiff(expertSlice(mine, o.localExperts, l), want), `${k} of expert ${e}`).toBeLessThan(
          5e-5,
        );
      }
    }
    // Collective calls (the same on every rank, or the job would hang). Each pass
    // runs forward counts + rows to the experts + rows back; backward, the rows
    // back, and the rows to the experts only when the layer input needs a
    // gradient: not in the parameter pass, where x is a constant.
    if (ep > 1) {
      expect(o.comm.allToAll.calls).toBe(3 + 1 + (3 + 2));
      expect(o.comm.allToAll.bytes).toBeGreaterThan(0);
    } else expect(o.comm.allToAll.calls).toBe(0);
    // Tensor-parallel: reduce() forward in both passes, enter()'s gradient in the input pass.
    expect(o.comm.tensorParallel.calls).toBe(a.tp > 1 ? 3 : 0);
  }
}

describe("MoE layer over simulated ranks = one process", () => {
  // One simulated world per size runs every layout of that size.
  it.each([
    [2, [{ ep: 2 }, { tp: 2 }]],
    [4, [{ ep: 2 }, { ep: 4 }, { ep: 2, tp: 2 }]],
  ] as const)(
    "world %i: EP, EP+DP, TP, EP x TP: outputs, input and parameter gradients",
    async (worldSize, layouts) => {
      await backendReady();
      const list = layouts.map((l) => ({ ...base, ...l }));
      const res = await runSimulated<MoeLayerArgs[], RankOut[]>({
        worldSize,
        module: new URL("./ranks/moe_layer.ts", import.meta.url),
        export: "moeLayerRank",
        args: list,
      });
      list.forEach((a, i) => {
        check(
          res.map((r) => r[i]!),
          a,
        );
      });
    },
  );
});
