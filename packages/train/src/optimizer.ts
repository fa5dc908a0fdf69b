import { adamStep, nativeAddon, experimental_nativeValues as nativeValues } from "@polymoe/kernels";
import {
  add,
  addN,
  div,
  keep,
  mul,
  type Scalar,
  sqrt,
  square,
  sub,
  sum,
  type Tensor,
  tensor,
  tidy,
  type Variable,
  zerosLike,
} from "@tensorflow/tfjs-core";
import { z } from "zod";

import { TrainError } from "./errors.js";
import { LrSchedule } from "./schedule.js";

export const OptimizerConfig = z.strictObject({
  type: z
    .enum(["adamw", "adam"])
    .default("adamw")
    .describe("adamw: decoupled weight decay; adam: weight decay added to the gradient (L2)"),
  lr: z.number().positive().default(5e-4).describe("peak learning rate"),
  betas: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).default([0.9, 0.98]),
  eps: z.number().positive().default(1e-8),
  weightDecay: z.number().min(0).default(0),
  decayNormsAndBiases: z.boolean().default(false).describe("also decay LayerNorm gains and biases"),
  clipNorm: z.number().min(0).default(1).describe("clip the global gradient norm to this (0 = off)"),
  schedule: LrSchedule.default({ type: "inverse-sqrt", warmupSteps: 4000, initLr: 1e-7 }),
});
export type OptimizerConfig = z.output<typeof OptimizerConfig>;

/** Optimizer state as plain arrays (what a checkpoint stores). */
export interface OptimizerState {
  step: number;
  /** "<param>.m" and "<param>.v" -> values. */
  tensors: Map<string, { shape: number[]; values: Float32Array }>;
}

/** Global L2 norm of gradients (one native pass each on polymoe-native). */
export function globalNorm(grads: Iterable<Tensor>): number {
  const list = [...grads];
  if (list.length === 0) return 0;
  const addon = nativeAddon();
  if (addon) {
    let total = 0;
    let allNative = true;
    for (const g of list) {
      const v = nativeValues(g);
      if (!v) {
        allNative = false;
        break;
      }
      total += addon.sumSquares(v);
    }
    if (allNative) return Math.sqrt(total);
  }
  return tidy(() => Math.sqrt((addN(list.map((g) => sum(square(g)))) as Scalar).dataSync()[0] as number));
}

const isNormOrBias = (name: string) => /\.(b|g|b1|b2)$/.test(name);

/** The weight decay of parameter `name`: 0 for LayerNorm gains and biases unless decayNormsAndBiases. */
export function decayOf(
  config: Pick<OptimizerConfig, "weightDecay" | "decayNormsAndBiases">,
  name: string,
): number {
  const { weightDecay } = config;
  return weightDecay > 0 && (config.decayNormsAndBiases || !isNormOrBias(name)) ? weightDecay : 0;
}

/**
 * What the trainer and checkpoints need of an optimizer: AdamW, or
 * @polymoe/offload's OffloadedAdamW (state in a host/disk store).
 */
export interface TrainOptimizer {
  step: number;
  apply(params: Map<string, Variable>, grads: Map<string, Tensor>, lr: number, gradScale?: number): void;
  state(): OptimizerState;
  load(state: OptimizerState, params: Map<string, Variable>): void;
  dispose(): void;
}

/**
 * Adam / AdamW over named variables. On the polymoe-native backend each
 * parameter is updated in place by one fused native pass (moments live in
 * host arrays); elsewhere by tfjs ops (moments are tensors). `state()` /
 * `load()` round-trip the moments exactly in both cases.
 */
export class AdamW implements TrainOptimizer {
  /** Moments of natively updated parameters. */
  private hostM = new Map<string, Float32Array>();
  private hostV = new Map<string, Float32Array>();
  /** Moments of parameters updated with tfjs ops. */
  private m = new Map<string, Tensor>();
  private v = new Map<string, Tensor>();
  /** Updates applied so far. */
  step = 0;
  /** Parameter shapes (for host moments in state()). */
  private readonly shapes = new Map<string, number[]>();

  constructor(readonly config: OptimizerConfig) {}

  private decayOf(name: string): number {
    return decayOf(this.config, name);
  }

  /**
   * One update with gradients multiplied by gradScale (accumulation average
   * times clipping factor): param -= lr * (mhat / (sqrt(vhat) + eps) + wd * param) (adamw).
   */
  apply(params: Map<string, Variable>, grads: Map<string, Tensor>, lr: number, gradScale = 1): void {
    const [b1, b2] = this.config.betas;
    const { eps } = this.config;
    this.step++;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    const addon = nativeAddon();
    for (const [name, g0] of grads) {
      const p = params.get(name);
      if (!p) throw new TrainError("INVALID_ARGUMENT", `optimizer: gradient for unknown parameter ${name}`);
      const decay = this.decayOf(name);
      if (!this.shapes.has(name)) this.shapes.set(name, p.shape.slice());
      const pv = addon && !this.m.has(name) ? nativeValues(p) : null;
      const gv = pv ? nativeValues(g0) : null;
      if (addon && pv && gv) {
        let m = this.hostM.get(name);
        let v = this.hostV.get(name);
        if (!m || !v) {
          m = new Float32Array(pv.length);
          v = new Float32Array(pv.length);
          this.hostM.set(name, m);
          this.hostV.set(name, v);
        }
        adamStep(
          { param: pv, grad: gv, m, v },
          {
            lr,
            beta1: b1,
            beta2: b2,
            eps,
            weightDecay: decay,
            decoupled: this.config.type === "adamw",
            step: this.step,
            gradScale,
          },
          { impl: "native" },
        );
        continue;
      }
      const m0 = this.m.get(name) ?? hostTensor(this.hostM.get(name), p);
      const v0 = this.v.get(name) ?? hostTensor(this.hostV.get(name), p);
      this.hostM.delete(name);
      this.hostV.delete(name);
      const [m1, v1] = tidy(() => {
        let g = gradScale === 1 ? g0 : mul(g0, gradScale);
        if (this.config.type === "adam" && decay > 0) g = add(g, mul(p, decay));
        const m = add(mul(m0 ?? zerosLike(p), b1), mul(g, 1 - b1));
        const v = add(mul(v0 ?? zerosLike(p), b2), mul(square(g), 1 - b2));
        let update = div(div(m, c1), add(sqrt(div(v, c2)), eps));
        if (this.config.type === "adamw" && decay > 0) update = add(update, mul(p, decay));
        p.assign(sub(p, mul(update, lr)));
        return [keep(m), keep(v)];
      }) as [Tensor, Tensor];
      m0?.dispose();
      v0?.dispose();
      this.m.set(name, m1);
      this.v.set(name, v1);
    }
  }

  state(): OptimizerState {
    const tensors = new Map<string, { shape: number[]; values: Float32Array }>();
    for (const [name, m] of this.hostM) {
      const shape = this.shapes.get(name) ?? [m.length];
      tensors.set(`${name}.m`, { shape, values: m.slice() });
      tensors.set(`${name}.v`, { shape, values: (this.hostV.get(name) as Float32Array).slice() });
    }
    for (const [name, m] of this.m) {
      tensors.set(`${name}.m`, {
        shape: m.shape.slice(),
        values: Float32Array.from(m.dataSync() as Float32Array),
      });
      const v = this.v.get(name) as Tensor;
      tensors.set(`${name}.v`, {
        shape: v.shape.slice(),
        values: Float32Array.from(v.dataSync() as Float32Array),
      });
    }
    return { step: this.step, tensors };
  }

  /** Restores moments saved by state(); unknown or misshapen entries are errors naming them. */
  load(state: OptimizerState, params: Map<string, Variable>): void {
    this.dispose();
    this.step = state.step;
    for (const [key, t] of state.tensors) {
      const kind = key.slice(-1);
      const name = key.slice(0, -2);
      const p = params.get(name);
      if (p) this.shapes.set(name, p.shape.slice());
      if (!p || (kind !== "m" && kind !== "v")) {
        throw new TrainError(
          "CHECKPOINT_CORRUPT",
          `optimizer state has '${key}', which matches no parameter of this model`,
        );
      }
      if (t.shape.join() !== p.shape.join()) {
        throw new TrainError(
          "ARCHITECTURE_MISMATCH",
          `optimizer state '${key}' has shape [${t.shape}] but parameter ${name} is [${p.shape}]`,
        );
      }
      // Moments return as host arrays; apply() moves them to tensors if this
      // backend cannot update the parameter natively.
      (kind === "m" ? this.hostM : this.hostV).set(name, Float32Array.from(t.values));
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
    this.hostM.clear();
    this.hostV.clear();
  }
}

/** A tensor of host moments (for parameters that moved off the native path), or undefined. */
function hostTensor(values: Float32Array | undefined, p: Variable): Tensor | undefined {
  return values ? keep(tensor(values, p.shape)) : undefined;
}
