// ZeRO-1/2 over the data-parallel group (dense) and the expert-data-parallel
// group (experts), with Adam on each rank's shard only.
import { type Communicator, createProcessGroups, gradientScale, ZeroGroup } from "../../src/index.js";
import { randomArray } from "./util.js";

export interface ZeroArgs {
  stage: 1 | 2;
  ep: number;
  denseSizes: number[];
  expertSizes: number[];
  steps: number;
}

/** The synthetic gradient of rank r at a step: depends on the parameters, so a missed gather shows. */
export function syntheticGrad(
  params: Float32Array,
  sizes: number[],
  r: number,
  step: number,
  salt: number,
): Float32Array {
  const n = sizes.reduce((a, b) => a + b, 0);
  const noise = randomArray(n, 1000 * step + 10 * r + salt);
  return Float32Array.from({ length: n }, (_, i) => Math.fround(0.3 * (r + 1) * params[i]! + noise[i]!));
}

export const adam = { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8 };

/** Adam on a slice: p, g, m, v are equal-length views. */
export function adamUpdate(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  t: number,
): void {
  const { lr, b1, b2, eps } = adam;
  for (let i = 0; i < p.length; i++) {
    m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
    v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
    const mh = m[i]! / (1 - b1 ** t);
    const vh = v[i]! / (1 - b2 ** t);
    p[i]! -= (lr * mh) / (Math.sqrt(vh) + eps);
  }
}

export async function zeroTrain(world: Communicator, args: ZeroArgs) {
  const groups = await createProcessGroups(world, { ep: args.ep });
  const coords = groups.layout.coords(world.rank);
  const scale = gradientScale(groups);
  const dense = new ZeroGroup({
    comm: groups.dp,
    stage: args.stage,
    sizes: args.denseSizes,
    gradScale: scale,
  });
  const expert = new ZeroGroup({
    comm: groups.edp,
    stage: args.stage,
    sizes: args.expertSizes,
    gradScale: scale,
  });
  const nd = args.denseSizes.reduce((a, b) => a + b, 0);
  const ne = args.expertSizes.reduce((a, b) => a + b, 0);
  dense.params.set(randomArray(nd, 7));
  expert.params.set(randomArray(ne, 8 + coords.epIndex)); // each ep index holds different experts
  const state = [dense, expert].map((z) => ({
    m: new Float32Array(z.partition.shardSize),
    v: new Float32Array(z.partition.shardSize),
  }));
  for (let step = 1; step <= args.steps; step++) {
    dense.grads.set(syntheticGrad(dense.params, args.denseSizes, coords.dpIndex, step, 0));
    expert.grads.set(
      syntheticGrad(expert.params, args.expertSizes, coords.dpIndex, step, 1 + coords.epIndex),
    );
    await Promise.all([dense.reduceGradients(), expert.reduceGradients()]);
    [dense, expert].forEach((z, k) => {
      adamUpdate(z.paramShard, z.gradShard, state[k]!.m, state[k]!.v, step);
    });
    await Promise.all([dense.gatherParameters(), expert.gatherParameters()]);
    dense.zeroGradients();
    expert.zeroGradients();
  }
  return {
    rank: world.rank,
    epIndex: coords.epIndex,
    dense: [...dense.params.subarray(0, nd)],
    expert: [...expert.params.subarray(0, ne)],
    paddingZero:
      dense.params.subarray(nd).every((x) => x === 0) && expert.params.subarray(ne).every((x) => x === 0),
    shardSizes: [dense.partition.shardSize, expert.partition.shardSize],
    calls: {
      dpAllReduce: groups.dp.stats().allReduce.calls,
      dpReduceScatter: groups.dp.stats().reduceScatter.calls,
      dpAllGather: groups.dp.stats().allGather.calls,
    },
  };
}
