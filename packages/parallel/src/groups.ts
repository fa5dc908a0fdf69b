// Process groups for expert + data + tensor parallelism (DeepSpeed-MoE's E+D,
// with Megatron-style tensor slicing inside).
//
// Rank layout (tensor-parallel innermost, so tensor-sliced peers share a host):
//
//   rank = dpIndex * tp + tpIndex                      dp  = worldSize / tp
//   dpIndex = edpIndex * ep + epIndex                  edp = dp / ep
//
// | group                | size | members of the group holding `rank`                      | what is reduced there                  |
// | -------------------- | ---- | -------------------------------------------------------- | -------------------------------------- |
// | world                | W    | all ranks                                                | —                                      |
// | tensor-parallel (tp) | tp   | same dpIndex, every tpIndex                              | partial sums of sliced expert FFNs     |
// | data-parallel (dp)   | dp   | same tpIndex, every dpIndex                              | dense (non-expert) gradients, / dp     |
// | expert-parallel (ep) | ep   | same tpIndex and edpIndex, every epIndex                 | tokens (all-to-all), not gradients     |
// | expert-data (edp)    | edp  | same tpIndex and epIndex, every edpIndex                 | expert gradients, / dp (not / edp!)    |
//
// An expert-parallel group holds all experts once (experts / ep per rank); its
// members see different tokens. Expert parameters are replicated only across
// the expert-data-parallel group, whose members hold the same experts.
import type { Communicator } from "./communicator.js";
import { ParallelError } from "./errors.js";

export interface LayoutInput {
  /** Number of ranks. */
  worldSize: number;
  /** Expert-parallel degree: ranks sharing one copy of all experts. Default 1. */
  ep?: number;
  /** Tensor-parallel degree: ranks slicing each expert FFN. Default 1. */
  tp?: number;
  /** Experts per MoE layer, if known: must divide by ep. */
  experts?: number;
}

/** A rank's position along every axis. */
export interface RankCoords {
  rank: number;
  tpIndex: number;
  dpIndex: number;
  epIndex: number;
  edpIndex: number;
}

export type GroupKind = "dp" | "ep" | "edp" | "tp";
export const GROUP_KINDS: readonly GroupKind[] = ["tp", "dp", "ep", "edp"];

export interface ParallelLayout {
  worldSize: number;
  tp: number;
  dp: number;
  ep: number;
  edp: number;
  /** Every group of each kind, as lists of world ranks in group-rank order. */
  groups: Record<GroupKind, number[][]>;
  coords(rank: number): RankCoords;
  /** Index (in `groups[kind]`) of the group of `kind` that holds `rank`. */
  groupOf(kind: GroupKind, rank: number): number;
}

function positiveInt(x: unknown, name: string, hint: string): number {
  if (typeof x !== "number" || !Number.isInteger(x) || x < 1) {
    throw new ParallelError("INVALID_LAYOUT", `${name} must be an integer >= 1, got ${String(x)}${hint}`);
  }
  return x;
}

function divisors(n: number): number[] {
  return [...Array(n).keys()].map((i) => i + 1).filter((d) => n % d === 0);
}

/** Computes (and validates) the group layout of (worldSize, ep, tp). Pure. */
export function computeLayout(input: LayoutInput): ParallelLayout {
  const worldSize = positiveInt(input.worldSize, "worldSize", "");
  const tp = positiveInt(input.tp ?? 1, "tp", "");
  const ep = positiveInt(input.ep ?? 1, "ep", "");
  if (worldSize % tp !== 0) {
    throw new ParallelError(
      "INVALID_LAYOUT",
      `worldSize=${worldSize} with tp=${tp} is impossible: tp must divide the world size ` +
        `(valid tp: ${divisors(worldSize).join(", ")})`,
    );
  }
  const dp = worldSize / tp;
  if (dp % ep !== 0) {
    throw new ParallelError(
      "INVALID_LAYOUT",
      `worldSize=${worldSize}, tp=${tp}, ep=${ep} is impossible: ep must divide the data-parallel size ` +
        `dp = worldSize / tp = ${dp} (expert-parallel groups are formed inside each data-parallel group; ` +
        `valid ep: ${divisors(dp).join(", ")})`,
    );
  }
  if (input.experts !== undefined) {
    const experts = positiveInt(input.experts, "experts", "");
    if (experts % ep !== 0) {
      throw new ParallelError(
        "INVALID_LAYOUT",
        `experts=${experts} with ep=${ep} is impossible: every rank of an expert-parallel group holds ` +
          `experts / ep experts (valid ep for ${experts} experts and dp=${dp}: ` +
          `${divisors(dp)
            .filter((d) => experts % d === 0)
            .join(", ")})`,
      );
    }
  }
  const edp = dp / ep;
  const rankOf = (dpIndex: number, tpIndex: number) => dpIndex * tp + tpIndex;
  const dpOf = (edpIndex: number, epIndex: number) => edpIndex * ep + epIndex;
  const range = (n: number) => [...Array(n).keys()];

  const groups: Record<GroupKind, number[][]> = {
    tp: range(dp).map((d) => range(tp).map((t) => rankOf(d, t))),
    dp: range(tp).map((t) => range(dp).map((d) => rankOf(d, t))),
    ep: range(tp).flatMap((t) => range(edp).map((b) => range(ep).map((e) => rankOf(dpOf(b, e), t)))),
    edp: range(tp).flatMap((t) => range(ep).map((e) => range(edp).map((b) => rankOf(dpOf(b, e), t)))),
  };

  const coords = (rank: number): RankCoords => {
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new ParallelError("INVALID_ARGUMENT", `rank ${rank} is outside the world (0..${worldSize - 1})`);
    }
    const tpIndex = rank % tp;
    const dpIndex = (rank - tpIndex) / tp;
    return { rank, tpIndex, dpIndex, epIndex: dpIndex % ep, edpIndex: Math.floor(dpIndex / ep) };
  };
  const groupOf = (kind: GroupKind, rank: number): number => {
    const c = coords(rank);
    switch (kind) {
      case "tp":
        return c.dpIndex;
      case "dp":
        return c.tpIndex;
      case "ep":
        return c.tpIndex * edp + c.edpIndex;
      case "edp":
        return c.tpIndex * ep + c.epIndex;
    }
  };
  return { worldSize, tp, dp, ep, edp, groups, coords, groupOf };
}

/** The communicators of one rank. */
export interface ProcessGroups {
  layout: ParallelLayout;
  world: Communicator;
  /** Dense (non-expert) gradients are averaged here. */
  dp: Communicator;
  /** The MoE all-to-all runs here. */
  ep: Communicator;
  /** Expert gradients are reduced here (and scaled by 1 / dp.size). */
  edp: Communicator;
  /** Sliced expert FFNs reduce their partial sums here. */
  tp: Communicator;
}

/**
 * Splits the world into this rank's tp, dp, ep and edp communicators (a
 * collective: every rank calls it with the same ep and tp).
 */
export async function createProcessGroups(
  world: Communicator,
  options: { ep?: number; tp?: number; experts?: number } = {},
): Promise<ProcessGroups> {
  const layout = computeLayout({ worldSize: world.size, ...options });
  const made: Partial<Record<GroupKind, Communicator>> = {};
  for (const kind of GROUP_KINDS) {
    const g = layout.groupOf(kind, world.rank);
    const key = layout.groups[kind][g]!.indexOf(world.rank);
    const comm = await world.split({ color: g, key, name: kind });
    made[kind] = comm!;
  }
  return { layout, world, dp: made.dp!, ep: made.ep!, edp: made.edp!, tp: made.tp! };
}

/** A table of the layout (one row per rank) for logs and docs. */
export function describeLayout(layout: ParallelLayout): string {
  const head = "| rank | tp idx | dp idx | ep idx | edp idx | tp group | dp group | ep group | edp group |";
  const sep = "| --- | --- | --- | --- | --- | --- | --- | --- | --- |";
  const fmt = (kind: GroupKind, r: number) => `[${layout.groups[kind][layout.groupOf(kind, r)]!.join(",")}]`;
  const rows = [...Array(layout.worldSize).keys()].map((r) => {
    const c = layout.coords(r);
    return `| ${r} | ${c.tpIndex} | ${c.dpIndex} | ${c.epIndex} | ${c.edpIndex} | ${fmt("tp", r)} | ${fmt("dp", r)} | ${fmt("ep", r)} | ${fmt("edp", r)} |`;
  });
  return [head, sep, ...rows].join("\n");
}
