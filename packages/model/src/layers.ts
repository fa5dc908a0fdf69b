// Small building blocks over tf.Variables (no tfjs-layers): linear maps,
// layer norm parameters, dropout driven by the routing RNG (so a resumed run
// draws the same masks).
import { dropout, layerNorm } from "@polymoe/kernels";
import type { Rng } from "@polymoe/routers";
import {
  add,
  matMul,
  ones,
  randomNormal,
  type Tensor,
  type Tensor2D,
  type Variable,
  variable,
  zeros,
} from "@tensorflow/tfjs-core";

/** Registers variables under one namespace; keys are the checkpoint names. */
export class ParamStore {
  readonly vars = new Map<string, Variable>();
  constructor(
    readonly namespace: string,
    readonly trainable: boolean,
  ) {}

  add(key: string, init: Tensor): Variable {
    if (this.vars.has(key)) throw new Error(`duplicate parameter ${key}`);
    const v = variable(init, this.trainable, `${this.namespace}.${key}`);
    init.dispose();
    this.vars.set(key, v);
    return v;
  }

  /** Adopts variables created elsewhere (MoE layers) under their keys. */
  adopt(prefix: string, vars: Record<string, Variable>): void {
    for (const [k, v] of Object.entries(vars)) {
      const key = `${prefix}.${k}`;
      if (this.vars.has(key)) throw new Error(`duplicate parameter ${key}`);
      this.vars.set(key, v);
    }
  }
}

export interface Linear {
  w: Variable;
  b: Variable | null;
}

/** y = x W + b with W ~ N(0, 1/fanIn). */
export function linear(
  store: ParamStore,
  key: string,
  dIn: number,
  dOut: number,
  seed: number,
  bias = true,
): Linear {
  return {
    w: store.add(`${key}.w`, randomNormal([dIn, dOut], 0, 1 / Math.sqrt(dIn), "float32", seed)),
    b: bias ? store.add(`${key}.b`, zeros([dOut])) : null,
  };
}

/**
 * x W + b. Not tf.fused.matMul: its op always goes through customGrad (an extra
 * op and closure per call), measured no faster at decoding's small shapes.
 */
export function applyLinear(l: Linear, x: Tensor2D): Tensor2D {
  const y = matMul(x, l.w) as Tensor2D;
  return l.b ? (add(y, l.b) as Tensor2D) : y;
}

export interface Norm {
  g: Variable;
  b: Variable;
}

export function norm(store: ParamStore, key: string, d: number): Norm {
  return { g: store.add(`${key}.g`, ones([d])), b: store.add(`${key}.b`, zeros([d])) };
}

export function applyNorm(n: Norm, x: Tensor2D, eps: number): Tensor2D {
  return layerNorm(x, n.g, n.b, eps);
}

/** Dropout with a seed drawn from the run's RNG (training only). */
export function drop<T extends Tensor>(x: T, rate: number, training: boolean, rng: Rng): T {
  return training && rate > 0 ? dropout(x, rate, rng.seed()) : x;
}
