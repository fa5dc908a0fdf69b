// Checkpoint names of expert parameters and tensor-slice arithmetic, shared by
// checkpoints and the parallel optimizer.

/** "<layer>.experts.<param>" -> "<layer>.experts.<id>.<param>" (checkpoints key experts by global id). */
export const expertName = (key: string, id: number) =>
  key.replace(/\.experts\.([^.]+)$/, `.experts.${id}.$1`);

const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

/** Part `k` of `n` equal parts along `axis` of a row-major tensor of `shape`. */
export function takeSlice(
  x: Float32Array,
  shape: readonly number[],
  axis: number,
  k: number,
  n: number,
): Float32Array {
  const outer = prod(shape.slice(0, axis));
  const dim = shape[axis] as number;
  const inner = prod(shape.slice(axis + 1));
  const part = dim / n;
  const out = new Float32Array(outer * part * inner);
  for (let o = 0; o < outer; o++) {
    const from = (o * dim + k * part) * inner;
    out.set(x.subarray(from, from + part * inner), o * part * inner);
  }
  return out;
}

/** Inverse of takeSlice: `parts[k]` (each of `partShape`) concatenated along `axis`. */
export function joinSlices(
  parts: readonly Float32Array[],
  partShape: readonly number[],
  axis: number,
): Float32Array {
  const n = parts.length;
  const outer = prod(partShape.slice(0, axis));
  const part = partShape[axis] as number;
  const inner = prod(partShape.slice(axis + 1));
  const out = new Float32Array(outer * part * n * inner);
  for (let k = 0; k < n; k++) {
    for (let o = 0; o < outer; o++) {
      out.set(
        (parts[k] as Float32Array).subarray(o * part * inner, (o + 1) * part * inner),
        (o * part * n + k * part) * inner,
      );
    }
  }
  return out;
}
