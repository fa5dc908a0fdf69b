// A toy MoE step with plain-loop math, to test gradient reduction end to end:
//   h = x ⊙ g (dense parameter g), y = W_e h for the token's expert e (top-1,
//   dropless), rank loss = mean over its T tokens of c · y.
// The global loss is the mean of the rank losses, so the reference gradients
// are sums over every token of every rank divided by (ranks * T).
import { randomArray, rng } from "./util.js";

export interface ToyArgs {
  worldSize: number;
  ep: number;
  experts: number;
  dModel: number;
  tokens: number;
  seed: number;
  bucketMb?: number;
}

export interface ToyData {
  x: Float32Array; // [T, M]
  expertOf: Int32Array; // [T]
}

export function toyData(args: ToyArgs, dpRank: number): ToyData {
  const pick = rng(args.seed * 101 + dpRank);
  return {
    x: randomArray(args.tokens * args.dModel, args.seed * 17 + dpRank),
    expertOf: Int32Array.from({ length: args.tokens }, () => Math.floor(((pick() + 1) / 2) * args.experts)),
  };
}

export const toyG = (args: ToyArgs) => randomArray(args.dModel, args.seed + 1);
export const toyC = (args: ToyArgs) => randomArray(args.dModel, args.seed + 2);
export const toyW = (args: ToyArgs, e: number) =>
  randomArray(args.dModel * args.dModel, args.seed * 1000 + e);

/** Reference gradients of the global loss, on one process: dg [M] and dW [E][M*M]. */
export function toyReference(args: ToyArgs): { dg: number[]; dW: number[][] } {
  const M = args.dModel;
  const g = toyG(args);
  const c = toyC(args);
  const norm = args.worldSize * args.tokens;
  const dg = new Float64Array(M);
  const dW = [...Array(args.experts)].map(() => new Float64Array(M * M));
  for (let r = 0; r < args.worldSize; r++) {
    const { x, expertOf } = toyData(args, r);
    for (let t = 0; t < args.tokens; t++) {
      const e = expertOf[t]!;
      const W = toyW(args, e);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < M; j++) dW[e]![i * M + j]! += (c[i]! * x[t * M + j]! * g[j]!) / norm;
      }
      for (let j = 0; j < M; j++) {
        let dh = 0;
        for (let i = 0; i < M; i++) dh += W[i * M + j]! * c[i]!;
        dg[j]! += (dh * x[t * M + j]!) / norm;
      }
    }
  }
  return { dg: [...dg], dW: dW.map((w) => [...w]) };
}
