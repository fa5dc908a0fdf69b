// Temperature sampling over datasets (Arivazhagan et al. 2019; TaskMoE uses T = 5):
//
//   p_l = n_l^(1/T) / Σ_k n_k^(1/T)
//
// T = 1 samples in proportion to size; T → ∞ samples uniformly. Pure functions.
import { DataError } from "./errors.js";

/**
 * Sampling probabilities from dataset sizes: `<float64>[datasets]` summing to 1.
 * Empty datasets (n = 0) get probability 0.
 */
export function temperatureProbabilities(counts: readonly number[], temperature: number): Float64Array {
  if (!(temperature > 0)) {
    throw new DataError("INVALID_ARGUMENT", `temperature must be > 0, got ${temperature}`);
  }
  const w = new Float64Array(counts.length);
  let total = 0;
  counts.forEach((n, i) => {
    if (!(n >= 0)) throw new DataError("INVALID_ARGUMENT", `counts[${i}] = ${n}; dataset sizes must be >= 0`);
    w[i] = n > 0 ? n ** (1 / temperature) : 0;
    total += w[i]!;
  });
  if (total === 0) throw new DataError("INVALID_ARGUMENT", "every dataset is empty: nothing to sample");
  for (let i = 0; i < w.length; i++) w[i]! /= total;
  return w;
}

/**
 * Splits `total` draws into integer quotas proportional to `probs` (largest remainder,
 * ties to the lower index): `<int32>[datasets]` summing exactly to `total`. Deterministic
 * quotas make every virtual epoch hit the sampling distribution exactly (up to rounding),
 * where multinomial draws would add noise of ±√(n p).
 */
export function allocateQuotas(probs: ArrayLike<number>, total: number): Int32Array {
  const n = probs.length;
  const q = new Int32Array(n);
  const rem: Array<[number, number]> = [];
  let used = 0;
  for (let i = 0; i < n; i++) {
    const x = probs[i]! * total;
    q[i] = Math.floor(x);
    used += q[i]!;
    rem.push([x - q[i]!, i]);
  }
  rem.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; used < total && k < rem.length; k++, used++) q[rem[k]![1]]! += 1;
  return q;
}
