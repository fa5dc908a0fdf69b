// Fused Adam / AdamW over host arrays: one pass over param, grad, m and v, in
// place. Native (OpenMP + SIMD, see native/src/optim.cc) when the addon is
// loaded, else the same arithmetic as a plain loop, so optimizer state kept on
// the host (offload) is updated the same way whatever backend runs the model.
import { loadAddon } from "./addon.js";
import { KernelError } from "./errors.js";

/** The four arrays of one parameter; param, m and v are updated in place. All have one length. */
export interface AdamArrays {
  param: Float32Array;
  grad: Float32Array;
  /** First moment (zeros before the first step). */
  m: Float32Array;
  /** Second moment (zeros before the first step). */
  v: Float32Array;
}

/** The hyperparameters of one Adam step. */
export interface AdamStepConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled (AdamW: p -= lr * wd * p) or L2 (Adam: g += wd * p), per `decoupled`. */
  weightDecay: number;
  /** AdamW (true) or Adam with L2 weight decay (false). */
  decoupled: boolean;
  /** 1-based step number, for bias correction (1 - beta^step). */
  step: number;
  /** The gradient is multiplied by this first (clipping, accumulation averaging); default 1. */
  gradScale?: number;
}

export interface AdamStepOptions {
  /** "auto" (native when loaded), "native" (error without the addon) or "js". Default "auto". */
  impl?: "auto" | "native" | "js";
}

const HYPER: readonly (keyof AdamStepConfig)[] = ["lr", "beta1", "beta2", "eps", "weightDecay", "step"];

/**
 * One Adam/AdamW update in place:
 *   g  = grad * gradScale (+ weightDecay * param unless decoupled)
 *   m  = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *   param -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)  (+ lr * weightDecay * param if decoupled)
 * — the update of @polymoe/train's AdamW and of tf.train.adam (without decay).
 * Returns which implementation ran.
 */
export function adamStep(
  arrays: AdamArrays,
  config: AdamStepConfig,
  options: AdamStepOptions = {},
): "native" | "js" {
  const { param, grad, m, v } = arrays;
  for (const [name, a] of [
    ["param", param],
    ["grad", grad],
    ["m", m],
    ["v", v],
  ] as const) {
    if (!(a instanceof Float32Array)) {
      throw new KernelError(
        "INVALID_ARGUMENT",
        `adamStep: ${name} must be a Float32Array, got ${describe(a)}`,
      );
    }
    if (a.length !== param.length) {
      throw new KernelError(
        "SHAPE_MISMATCH",
        `adamStep: ${name} has ${a.length} elements but param has ${param.length}; ` +
          "param, grad, m and v must have one length (the parameter's size)",
      );
    }
  }
  for (const key of HYPER) {
    const x = config[key] as number;
    if (typeof x !== "number" || !Number.isFinite(x)) {
      throw new KernelError("INVALID_ARGUMENT", `adamStep: ${key} must be a finite number, got ${String(x)}`);
    }
  }
  if (!Number.isInteger(config.step) || config.step < 1) {
    throw new KernelError("INVALID_ARGUMENT", `adamStep: step must be an integer >= 1, got ${config.step}`);
  }
  if (!(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 >= 0 && config.beta2 < 1)) {
    throw new KernelError(
      "INVALID_ARGUMENT",
      `adamStep: beta1 and beta2 must be in [0, 1), got ${config.beta1} and ${config.beta2}`,
    );
  }
  const scale = config.gradScale ?? 1;
  const bias1 = 1 - config.beta1 ** config.step;
  const bias2 = 1 - config.beta2 ** config.step;
  const impl = options.impl ?? "auto";
  const loaded = impl === "js" ? null : loadAddon();
  if (impl === "native" && !loaded?.addon) {
    throw new KernelError("ADDON_UNAVAILABLE", `adamStep: impl "native" asked for, but ${loaded?.error}`);
  }
  if (loaded?.addon) {
    loaded.addon.adamUpdate(
      param,
      grad,
      m,
      v,
      config.lr,
      config.beta1,
      config.beta2,
      config.eps,
      config.weightDecay,
      bias1,
      bias2,
      scale,
      config.decoupled,
    );
    return "native";
  }
  adamLoop(param, grad, m, v, config, scale, bias1, bias2);
  return "js";
}

/** The plain-loop path: float32 inputs, products rounded to float32 like the native kernel's. */
function adamLoop(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  c: AdamStepConfig,
  scale: number,
  bias1: number,
  bias2: number,
): void {
  const f = Math.fround;
  const b1 = f(c.beta1);
  const b2 = f(c.beta2);
  const lr = f(c.lr);
  const eps = f(c.eps);
  const wd = f(c.weightDecay);
  const invB1 = f(1 / f(bias1));
  const invSqrtB2 = f(1 / f(Math.sqrt(f(bias2))));
  const s = f(scale);
  const l2 = !c.decoupled && wd !== 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i] as number;
    let gi = f((g[i] as number) * s);
    if (l2) gi = f(gi + f(wd * pi));
    const mi = f(f(b1 * (m[i] as number)) + f(f(1 - b1) * gi));
    const vi = f(f(b2 * (v[i] as number)) + f(f(f(1 - b2) * gi) * gi));
    m[i] = mi;
    v[i] = vi;
    let update = f(f(mi * invB1) / f(f(f(Math.sqrt(vi)) * invSqrtB2) + eps));
    if (c.decoupled) update = f(update + f(wd * pi));
    p[i] = f(pi - f(lr * update));
  }
}

function describe(x: unknown): string {
  if (x === null) return "null";
  if (typeof x !== "object") return typeof x;
  return (x as object).constructor?.name ?? "an object";
}

/**
 * dst = src (multi-threaded memcpy when the addon is loaded, else
 * TypedArray.set). The reference for memory bandwidth in bench:adam.
 */
export function copyFloat32(dst: Float32Array, src: Float32Array): void {
  if (dst.length !== src.length) {
    throw new KernelError(
      "SHAPE_MISMATCH",
      `copyFloat32: dst has ${dst.length} elements but src has ${src.length}`,
    );
  }
  const addon = loadAddon().addon;
  if (addon) addon.copyF32(dst, src);
  else dst.set(src);
}
