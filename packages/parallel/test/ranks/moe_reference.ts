// Inputs and plain-loop references of ranks/moe.ts.
import { randomArray, rng } from "./util.js";

export interface ExchangeArgs {
  experts: number;
  capacity: number;
  dModel: number;
  seed: number;
}

/** Rank r's dropless input: 0..3 rows per expert, sorted by expert. */
export function droplessInput(
  args: ExchangeArgs,
  r: number,
): { tokensTM: Float32Array; countsE: Int32Array } {
  const pick = rng(args.seed * 7 + r);
  const countsE = Int32Array.from({ length: args.experts }, () => Math.floor((pick() + 1) * 2)); // 0..3
  const rows = countsE.reduce((a, b) => a + b, 0);
  return { tokensTM: randomArray(rows * args.dModel, args.seed * 13 + r), countsE };
}

const expert = (g: number, x: number) => Math.fround((g + 1) * x + 0.5);

/** What rank r must see, computed without any exchange from every rank's inputs. */
export function exchangeReference(args: ExchangeArgs, p: number, r: number) {
  const { experts: E, capacity: C, dModel: M, seed } = args;
  const el = E / p;
  const cm = C * M;
  const dispatched = [...Array(p).keys()].map((s) => randomArray(E * cm, seed + s));
  const expertInputLRCM: number[] = [];
  for (let l = 0; l < el; l++) {
    for (let s = 0; s < p; s++) {
      const e = r * el + l;
      expertInputLRCM.push(...dispatched[s]!.subarray(e * cm, (e + 1) * cm));
    }
  }
  const combinedECM = [...dispatched[r]!].map((x, i) => expert(Math.floor(i / cm), x));
  const inputs = [...Array(p).keys()].map((s) => droplessInput(args, s));
  const droplessExpertInput: number[] = [];
  for (let l = 0; l < el; l++) {
    const e = r * el + l;
    for (let s = 0; s < p; s++) {
      const { tokensTM, countsE } = inputs[s]!;
      let start = 0;
      for (let k = 0; k < e; k++) start += countsE[k]!;
      droplessExpertInput.push(...tokensTM.subarray(start * M, (start + countsE[e]!) * M));
    }
  }
  const own = inputs[r]!;
  const droplessOut: number[] = [];
  let row = 0;
  own.countsE.forEach((n, e) => {
    for (let k = 0; k < n; k++, row++) {
      for (let m = 0; m < M; m++) droplessOut.push(expert(e, own.tokensTM[row * M + m]!));
    }
  });
  return { expertInputLRCM, combinedECM, droplessExpertInput, droplessOut };
}
