import { setupTestBackends } from "@polymoe/kernels/testing";

export const env = setupTestBackends();
export { assertClose, assertNoLeak, onBackend, rand, take } from "@polymoe/kernels/testing";

let counter = 0;
/** A unique tfjs variable namespace per model built in a test file. */
export const uniq = (s: string) => `${s}${counter++}`;

/** softmax(x / T) in float64. */
export function softmax(x: ArrayLike<number>, T = 1): number[] {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < x.length; i++) m = Math.max(m, (x[i] as number) / T);
  const e = Array.from(x, (v) => Math.exp(v / T - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/**
 * Plain-loop reference of the word-level KD loss and its gradient with respect to the
 * student logits, in float64. `teacherP[r]` is the (possibly approximate) teacher
 * distribution of real row r over the vocabulary (zeros allowed).
 */
export function referenceKd(
  z: ArrayLike<number>,
  V: number,
  teacherP: number[][],
  targets: ArrayLike<number>,
  mask: ArrayLike<number>,
  alpha: number,
  T: number,
  eps: number,
): { loss: number; kl: number; ce: number; nll: number; grad: Float64Array } {
  const N = mask.length;
  const grad = new Float64Array(N * V);
  const rows: number[] = [];
  for (let i = 0; i < N; i++) if (mask[i]) rows.push(i);
  const R = rows.length;
  let kl = 0;
  let ce = 0;
  let nll = 0;
  rows.forEach((row, r) => {
    const zr = Array.from({ length: V }, (_, v) => z[row * V + v] as number);
    const q = softmax(zr, T);
    const s = softmax(zr, 1);
    const p = teacherP[r] as number[];
    const pSum = p.reduce((a, b) => a + b, 0);
    for (let v = 0; v < V; v++) {
      const pv = p[v] as number;
      if (pv > 0) kl += pv * (Math.log(pv) - Math.log(q[v] as number));
    }
    const y = targets[row] as number;
    const rowNll = -Math.log(s[y] as number);
    let smooth = 0;
    for (let v = 0; v < V; v++) smooth -= Math.log(s[v] as number) / V;
    nll += rowNll;
    ce += (1 - eps) * rowNll + eps * smooth;
    for (let v = 0; v < V; v++) {
      const dKl = ((q[v] as number) * pSum - (p[v] as number)) / T;
      const dCe = (s[v] as number) - (1 - eps) * (v === y ? 1 : 0) - eps / V;
      grad[row * V + v] = (alpha * T * T * dKl + (1 - alpha) * dCe) / R;
    }
  });
  kl /= R;
  ce /= R;
  nll /= R;
  return { loss: alpha * T * T * kl + (1 - alpha) * ce, kl, ce, nll, grad };
}
