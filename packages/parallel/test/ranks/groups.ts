import { type Communicator, createProcessGroups, GROUP_KINDS } from "../../src/index.js";

/** Each group's members as seen through the communicator itself (allGather of world ranks). */
export async function groupMembers(world: Communicator, args: { ep: number; tp: number }) {
  const groups = await createProcessGroups(world, args);
  const out: Record<string, { rank: number; size: number; members: number[]; name: string }> = {};
  for (const kind of GROUP_KINDS) {
    const c = groups[kind];
    out[kind] = {
      rank: c.rank,
      size: c.size,
      name: c.name,
      members: [...(await c.allGather(Int32Array.of(world.rank)))],
    };
  }
  return { coords: groups.layout.coords(world.rank), groups: out, splits: world.stats().split.calls };
}
