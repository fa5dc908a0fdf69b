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

/** Global L2 norm of gradients. */
export function globalNorm(grads: Iterable<Tensor>): number {
  const list = [...grads];
  if (list.length === 0) return 0;
  return tidy(() => Math.sqrt((addN(list.map((g) => sum(square(g)))) as Scalar).dataSync()[0] as number));
}

const isNormOrBias = (name: string) => /\.(b|g|b1|b2)$/.test(name);

/**
 * Adam / AdamW over named variables. Moments are created lazily at the first
 * update of each parameter and kept outside any tidy; `state()`/`load()`
 * round-trip them exactly for resumable training.
 */
export class AdamW {
  private m = new Map<string, Tensor>();
  private v = new Map<string, Tensor>();
  /** Updates applied so far. */
  step = 0;

  constructor(readonly config: OptimizerConfig) {}

  /**
   * One update: params[name] -= lr * (mhat / (sqrt(vhat) + eps) + wd * param)
   * (adamw) for every gradient given. Gradients must already be clipped.
   */
  apply(params: Map<string, Variable>, grads: Map<string, Tensor>, lr: number): void {
    const [b1, b2] = this.config.betas;
    const { eps, weightDecay } = this.config;
    this.step++;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    for (const [name, g0] of grads) {
      const p = params.get(name);
      if (!p) throw new TrainError("INVALID_ARGUMENT", `optimizer: gradient for unknown parameter ${name}`);
      const decay =
        weightDecay > 0 && (this.config.decayNormsAndBiases || !isNormOrBias(name)) ? weightDecay : 0;
      const m0 = this.m.get(name);
      const v0 = this.v.get(name);
      const [m1, v1] = tidy(() => {
        const g = this.config.type === "adam" && decay > 0 ? add(g0, mul(p, decay)) : g0;
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
      (kind === "m" ? this.m : this.v).set(name, keep(tensor(t.values, t.shape)));
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
