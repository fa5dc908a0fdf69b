import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { computeLayout, describeLayout, GROUP_KINDS, ParallelError, runSimulated } from "../src/index.js";
import type { groupMembers } from "./ranks/groups.js";

describe("process-group layout", () => {
  it("world 8, ep 2, tp 1 matches DeepSpeed's E+D grouping", () => {
    const l = computeLayout({ worldSize: 8, ep: 2 });
    expect([l.dp, l.ep, l.edp, l.tp]).toEqual([8, 2, 4, 1]);
    expect(l.groups.ep).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
      [6, 7],
    ]);
    expect(l.groups.edp).toEqual([
      [0, 2, 4, 6],
      [1, 3, 5, 7],
    ]);
    expect(l.groups.dp).toEqual([[0, 1, 2, 3, 4, 5, 6, 7]]);
    expect(l.groups.tp).toEqual([[0], [1], [2], [3], [4], [5], [6], [7]]);
  });

  it("world 8, ep 2, tp 2: tensor-parallel innermost, expert groups inside each data-parallel group", () => {
    const l = computeLayout({ worldSize: 8, ep: 2, tp: 2, experts: 4 });
    expect([l.dp, l.ep, l.edp, l.tp]).toEqual([4, 2, 2, 2]);
    expect(l.groups.tp).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
      [6, 7],
    ]);
    expect(l.groups.dp).toEqual([
      [0, 2, 4, 6],
      [1, 3, 5, 7],
    ]);
    expect(l.groups.ep).toEqual([
      [0, 2],
      [4, 6],
      [1, 3],
      [5, 7],
    ]);
    expect(l.groups.edp).toEqual([
      [0, 4],
      [2, 6],
      [1, 5],
      [3, 7],
    ]);
    expect(l.coords(6)).toEqual({ rank: 6, tpIndex: 0, dpIndex: 3, epIndex: 1, edpIndex: 1 });
    expect(describeLayout(l).split("\n")[8]).toBe(
      "| 6 | 0 | 3 | 1 | 1 | [6,7] | [0,2,4,6] | [4,6] | [2,6] |",
    );
  });

  it("impossible combinations name the combination and the valid choices", () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(ParallelError);
        expect((e as ParallelError).code).toBe("INVALID_LAYOUT");
        return (e as Error).message;
      }
      throw new Error("did not throw");
    };
    expect(err(() => computeLayout({ worldSize: 6, tp: 4 }))).toBe(
      "worldSize=6 with tp=4 is impossible: tp must divide the world size (valid tp: 1, 2, 3, 6)",
    );
    expect(err(() => computeLayout({ worldSize: 12, tp: 2, ep: 4 }))).toBe(
      "worldSize=12, tp=2, ep=4 is impossible: ep must divide the data-parallel size dp = worldSize / tp = 6 " +
        "(expert-parallel groups are formed inside each data-parallel group; valid ep: 1, 2, 3, 6)",
    );
    expect(err(() => computeLayout({ worldSize: 8, ep: 4, experts: 6 }))).toBe(
      "experts=6 with ep=4 is impossible: every rank of an expert-parallel group holds experts / ep experts " +
        "(valid ep for 6 experts and dp=8: 1, 2)",
    );
    expect(err(() => computeLayout({ worldSize: 0 }))).toBe("worldSize must be an integer >= 1, got 0");
    expect(err(() => computeLayout({ worldSize: 4, ep: 1.5 }))).toBe("ep must be an integer >= 1, got 1.5");
  });

  it("property: every kind partitions the world; ep and edp groups meet in exactly one rank; tp peers share dp coordinates", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        (a, ep, tp) => {
          const worldSize = a * ep * tp;
          const l = computeLayout({ worldSize, ep, tp });
          for (const kind of GROUP_KINDS) {
            const all = l.groups[kind].flat().sort((x, y) => x - y);
            expect(all).toEqual([...Array(worldSize).keys()]);
          }
          for (let r = 0; r < worldSize; r++) {
            const epG = l.groups.ep[l.groupOf("ep", r)]!;
            const edpG = l.groups.edp[l.groupOf("edp", r)]!;
            expect(epG.filter((x) => edpG.includes(x))).toEqual([r]);
            expect(epG.length * edpG.length).toBe(l.dp);
            for (const q of l.groups.tp[l.groupOf("tp", r)]!)
              expect(l.coords(q).dpIndex).toBe(l.coords(r).dpIndex);
          }
        },
      ),
    );
  });
});

describe("createProcessGroups on 4 simulated ranks (ep 2, tp 2)", () => {
  it("each communicator holds exactly the layout's members, in order", async () => {
    const res = await runSimulated<{ ep: number; tp: number }, Awaited<ReturnType<typeof groupMembers>>>({
      worldSize: 4,
      module: new URL("./ranks/groups.ts", import.meta.url),
      export: "groupMembers",
      args: { ep: 2, tp: 2 },
    });
    const l = computeLayout({ worldSize: 4, ep: 2, tp: 2 });
    res.forEach((o, r) => {
      expect(o.splits).toBe(4);
      for (const kind of GROUP_KINDS) {
        const members = l.groups[kind][l.groupOf(kind, r)]!;
        expect(o.groups[kind]).toEqual({
          rank: members.indexOf(r),
          size: members.length,
          members,
          name: `world/${kind}`,
        });
      }
    });
  });
});
