// One data + expert parallel training step of the toy MoE (ranks/toy_moe.ts):
// tokens go to their experts' owners (dropless exchange), the owners compute
// expert gradients, and reduceGradients averages dense and expert gradients.
import {
  type Communicator,
  createProcessGroups,
  exchangeTokensFromExperts,
  exchangeTokensToExperts,
  gradientScale,
  reduceGradients,
} from "../../src/index.js";
import { type ToyArgs, toyC, toyData, toyG, toyW } from "./toy_moe.js";

export async function trainStep(world: Communicator, args: ToyArgs) {
  const groups = await createProcessGroups(world, { ep: args.ep, experts: args.experts });
  const { dModel: M, tokens: T, experts: E } = args;
  const p = groups.ep.size;
  const el = E / p;
  const firstExpert = groups.ep.rank * el;
  const { x, expertOf } = toyData(args, groups.layout.coords(world.rank).dpIndex);
  const g = toyG(args);
  const c = toyC(args);
  const W = [...Array(el).keys()].map((l) => toyW(args, firstExpert + l));

  // Forward: h = x ⊙ g, sorted by expert.
  const order = [...Array(T).keys()].sort((a, b) => expertOf[a]! - expertOf[b]! || a - b);
  const countsE = new Int32Array(E);
  for (const e of expertOf) countsE[e]!++;
  const hTM = new Float32Array(T * M);
  order.forEach((t, row) => {
    for (let m = 0; m < M; m++) hTM[row * M + m] = x[t * M + m]! * g[m]!;
  });
  const { expertInputTM: hExpert, plan } = await exchangeTokensToExperts(groups.ep, hTM, countsE, M);

  // Backward: dy = c / T for every own token, sent to the experts like h was.
  const dyTM = new Float32Array(T * M);
  for (let row = 0; row < T; row++) for (let m = 0; m < M; m++) dyTM[row * M + m] = c[m]! / T;
  const { expertInputTM: dyExpert } = await exchangeTokensToExperts(groups.ep, dyTM, countsE, M);
  const dW = W.map(() => new Float32Array(M * M));
  const dhExpert = new Float32Array(hExpert.length);
  let row = 0;
  for (let l = 0; l < el; l++) {
    for (let s = 0; s < p; s++) {
      for (let k = 0; k < plan.countsLR[l * p + s]!; k++, row++) {
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < M; j++) {
            dW[l]![i * M + j]! += dyExpert[row * M + i]! * hExpert[row * M + j]!;
            dhExpert[row * M + j]! += W[l]![i * M + j]! * dyExpert[row * M + i]!;
          }
        }
      }
    }
  }
  const dhTM = await exchangeTokensFromExperts(groups.ep, dhExpert, plan);
  const dg = new Float32Array(M);
  order.forEach((t, r) => {
    for (let m = 0; m < M; m++) dg[m]! += dhTM[r * M + m]! * x[t * M + m]!;
  });

  const calls = await reduceGradients(
    groups,
    { dense: [dg], expert: dW },
    args.bucketMb === undefined ? {} : { bucketMb: args.bucketMb },
  );
  return {
    rank: world.rank,
    firstExpert,
    dg: [...dg],
    dW: dW.map((w) => [...w]),
    scale: gradientScale(groups),
    sizes: { dp: groups.dp.size, ep: groups.ep.size, edp: groups.edp.size },
    calls,
    edpAllReduceCalls: groups.edp.stats().allReduce.calls,
    dpAllReduceCalls: groups.dp.stats().allReduce.calls,
  };
}
