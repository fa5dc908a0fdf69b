// The MoE all-to-all on an expert-parallel group = the whole world. Each rank
// applies "expert g" as x -> (g + 1) * x + 0.5 to the rows it owns, so the
// round trip has a closed-form single-rank reference (see moe_reference.ts).
import {
  type Communicator,
  exchangeFromExperts,
  exchangeToExperts,
  exchangeTokensFromExperts,
  exchangeTokensToExperts,
} from "../../src/index.js";
import { droplessInput, type ExchangeArgs } from "./moe_reference.js";
import { randomArray } from "./util.js";

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export async function exchange(ep: Communicator, args: ExchangeArgs) {
  const { experts: E, capacity: C, dModel: M, seed } = args;
  const p = ep.size;
  const r = ep.rank;
  const el = E / p;
  const shape = { experts: E, capacity: C, dModel: M };
  const cm = C * M;

  // Capacity mode: [E, C, M] -> [El, ep, C, M] -> experts -> [E, C, M].
  const dispatchedECM = randomArray(E * cm, seed + r);
  const expertInputLRCM = await exchangeToExperts(ep, dispatchedECM, shape);
  const expertOutputLRCM = new Float32Array(expertInputLRCM.length);
  for (let l = 0; l < el; l++) {
    const g = r * el + l;
    for (let i = l * p * cm; i < (l + 1) * p * cm; i++)
      expertOutputLRCM[i] = (g + 1) * expertInputLRCM[i]! + 0.5;
  }
  const combinedECM = await exchangeFromExperts(ep, expertOutputLRCM, shape);

  // Adjoint: <A x, y> = <x, Aᵀ y> with A = exchangeToExperts, Aᵀ = exchangeFromExperts.
  const yLRCM = randomArray(E * cm, seed * 31 + r);
  const atY = await exchangeFromExperts(ep, yLRCM, shape);
  const dots = await ep.allReduce(Float64Array.of(dot(expertInputLRCM, yLRCM), dot(dispatchedECM, atY)));
  // Inverse: exchangeFromExperts(exchangeToExperts(x)) = x exactly.
  const back = await exchangeFromExperts(ep, expertInputLRCM, shape);
  const inverse = back.every((v, i) => v === dispatchedECM[i]);

  // Dropless: rows sorted by expert, variable counts.
  const { tokensTM, countsE } = droplessInput(args, r);
  const { expertInputTM, plan } = await exchangeTokensToExperts(ep, tokensTM, countsE, M);
  const expertOutputTM = new Float32Array(expertInputTM.length);
  let row = 0;
  for (let l = 0; l < el; l++) {
    const g = r * el + l;
    for (let s = 0; s < p; s++) {
      for (let k = 0; k < plan.countsLR[l * p + s]!; k++, row++) {
        for (let m = 0; m < M; m++) expertOutputTM[row * M + m] = (g + 1) * expertInputTM[row * M + m]! + 0.5;
      }
    }
  }
  const droplessOut = await exchangeTokensFromExperts(ep, expertOutputTM, plan);
  const stats = ep.stats();
  return {
    expertInputLRCM: [...expertInputLRCM],
    combinedECM: [...combinedECM],
    dots: [...dots],
    inverse,
    droplessExpertInput: [...expertInputTM],
    countsLR: [...plan.countsLR],
    droplessOut: [...droplessOut],
    allToAllCalls: stats.allToAll.calls,
    allToAllVCalls: stats.allToAllV.calls,
  };
}
