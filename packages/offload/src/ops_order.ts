// Adam/AdamW in the operation order and float32 rounding of @polymoe/train's
// tfjs-ops path (one rounding per tfjs op, as the cpu backend does): the
// update an offloaded run uses off the native backend, so it matches the
// trainer without offload on that backend bitwise. (The fused native kernel
// rounds differently; Adam magnifies such differences in parameters whose
// gradients are rounding noise, e.g. attention key biases.)
import type { AdamStepConfig } from "@polymoe/kernels";

const f = Math.fround;

/** In place over param, m, v; same contract as @polymoe/kernels adamStep. */
export function adamStepOpsOrder(
  param: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  c: AdamStepConfig,
): void {
  const scale = c.gradScale ?? 1;
  const s = f(scale);
  const b1 = f(c.beta1);
  const b2 = f(c.beta2);
  const omb1 = f(1 - c.beta1);
  const omb2 = f(1 - c.beta2);
  const c1 = f(1 - c.beta1 ** c.step);
  const c2 = f(1 - c.beta2 ** c.step);
  const eps = f(c.eps);
  const lr = f(c.lr);
  const wd = f(c.weightDecay);
  const l2 = !c.decoupled && c.weightDecay > 0;
  const decoupled = c.decoupled && c.weightDecay > 0;
  for (let i = 0; i < param.length; i++) {
    const p = param[i] as number;
    let g = scale === 1 ? (grad[i] as number) : f((grad[i] as number) * s);
    if (l2) g = f(g + f(p * wd));
    const mi = f(f((m[i] as number) * b1) + f(g * omb1));
    const vi = f(f((v[i] as number) * b2) + f(f(g * g) * omb2));
    m[i] = mi;
    v[i] = vi;
    let u = f(f(mi / c1) / f(f(Math.sqrt(f(vi / c2))) + eps));
    if (decoupled) u = f(u + f(p * wd));
    param[i] = f(p - f(u * lr));
  }
}
