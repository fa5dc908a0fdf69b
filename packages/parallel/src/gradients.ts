// Data-parallel gradient reduction: bucketed all-reduce, and the rule for
// which group reduces which gradients and by how much they are scaled.
import type { Communicator } from "./communicator.js";
import { ParallelError } from "./errors.js";
import type { ProcessGroups } from "./groups.js";
import { commBuffer } from "./mpi.js";

/** A run of consecutive gradients reduced by one allReduce. */
export interface Bucket {
  /** Index of the first and one past the last gradient of the bucket. */
  first: number;
  end: number;
  elements: number;
  /** The bucket is one gradient larger than the bucket size, reduced in place without a copy. */
  direct: boolean;
}

/**
 * Groups gradients (by element count, in order) into buckets of at most
 * `bucketElements`; a gradient larger than that forms its own (direct) bucket.
 */
export function planBuckets(sizes: readonly number[], bucketElements: number): Bucket[] {
  if (!Number.isInteger(bucketElements) || bucketElements < 1) {
    throw new ParallelError(
      "INVALID_ARGUMENT",
      `planBuckets: bucketElements must be an integer >= 1, got ${bucketElements}`,
    );
  }
  const buckets: Bucket[] = [];
  let cur: Bucket | null = null;
  sizes.forEach((n, i) => {
    if (n >= bucketElements) {
      if (cur) buckets.push(cur);
      cur = null;
      buckets.push({ first: i, end: i + 1, elements: n, direct: true });
      return;
    }
    if (cur && cur.elements + n > bucketElements) {
      buckets.push(cur);
      cur = null;
    }
    cur ??= { first: i, end: i, elements: 0, direct: false };
    cur.end = i + 1;
    cur.elements += n;
  });
  if (cur) buckets.push(cur);
  return buckets;
}

export interface BucketedAllReduceOptions {
  /** Bucket size in MiB of float32 data. Default 25 (PyTorch DDP's default). */
  bucketMb?: number;
  /** Multiplies the reduced sums (1 / n for a mean over n ranks). Default 1. */
  scale?: number;
}

/**
 * Sums each gradient over `comm` in place (then scales it), packing small
 * gradients into buckets so that few, large allReduce calls move them. Packing
 * bucket i+1 overlaps with the reduction of bucket i. Resolves to the number of
 * allReduce calls made.
 */
export async function allReduceBucketed(
  comm: Communicator,
  grads: readonly Float32Array[],
  options: BucketedAllReduceOptions = {},
): Promise<number> {
  const bucketMb = options.bucketMb ?? 25;
  const scale = options.scale ?? 1;
  if (!(bucketMb > 0) || !Number.isFinite(bucketMb)) {
    throw new ParallelError("INVALID_ARGUMENT", `allReduceBucketed: bucketMb must be > 0, got ${bucketMb}`);
  }
  if (!Number.isFinite(scale))
    throw new ParallelError("INVALID_ARGUMENT", `allReduceBucketed: scale must be finite, got ${scale}`);
  grads.forEach((g, i) => {
    if (!(g instanceof Float32Array)) {
      throw new ParallelError("INVALID_ARGUMENT", `allReduceBucketed: grads[${i}] must be a Float32Array`);
    }
  });
  const bucketElements = Math.max(1, Math.floor((bucketMb * 1024 * 1024) / 4));
  const plan = planBuckets(
    grads.map((g) => g.length),
    bucketElements,
  );
  const largest = Math.max(0, ...plan.filter((b) => !b.direct).map((b) => b.elements));
  const buffers = [commBuffer(largest), commBuffer(plan.length > 1 ? largest : 0)];
  const pending: Promise<void>[] = [];
  const scaleAll = (x: Float32Array) => {
    if (scale !== 1) for (let i = 0; i < x.length; i++) x[i]! *= scale;
  };
  for (let b = 0; b < plan.length; b++) {
    const bucket = plan[b]!;
    if (b >= 2) await pending[b - 2]; // its buffer is free again
    if (bucket.direct) {
      const g = grads[bucket.first]!;
      pending.push(comm.allReduce(g).then(scaleAll));
      continue;
    }
    const flat = buffers[b % 2]!.subarray(0, bucket.elements);
    let at = 0;
    for (let i = bucket.first; i < bucket.end; i++) {
      flat.set(grads[i]!, at);
      at += grads[i]!.length;
    }
    pending.push(
      comm.allReduce(flat).then((sum) => {
        let off = 0;
        for (let i = bucket.first; i < bucket.end; i++) {
          const g = grads[i]!;
          for (let k = 0; k < g.length; k++) g[k] = sum[off + k]! * scale;
          off += g.length;
        }
      }),
    );
  }
  await Promise.all(pending);
  return plan.length;
}

/** The two parameter groups of an MoE model, as the trainer holds them. */
export interface GradientGroups {
  /** Gradients of parameters replicated on every data-parallel rank. */
  dense: readonly Float32Array[];
  /** Gradients of this rank's experts (replicated only across the expert-data-parallel group). */
  expert: readonly Float32Array[];
}

/**
 * The factor every reduced gradient is multiplied by: 1 / dp, for dense AND
 * expert gradients. Each rank's loss is a mean over its own tokens, so an
 * expert's gradient on its owner already sums the contributions of the tokens
 * of all ep ranks that sent it tokens; summing over the edp group then covers
 * the tokens of all dp ranks, and the global mean divides by dp. Dividing
 * expert gradients by edp = dp / ep instead (as DeepSpeed once did) makes them
 * ep times too large.
 */
export function gradientScale(groups: Pick<ProcessGroups, "dp">): number {
  return 1 / groups.dp.size;
}

/**
 * Averages a step's gradients across data-parallel replicas: dense gradients
 * over the dp group, expert gradients over the edp group, both scaled by
 * 1 / dp (see gradientScale). The two reductions run concurrently. Resolves to
 * the allReduce calls made on each group.
 */
export async function reduceGradients(
  groups: Pick<ProcessGroups, "dp" | "edp">,
  grads: GradientGroups,
  options: { bucketMb?: number } = {},
): Promise<{ dense: number; expert: number }> {
  const scale = gradientScale(groups);
  const common = options.bucketMb === undefined ? { scale } : { scale, bucketMb: options.bucketMb };
  const [dense, expert] = await Promise.all([
    allReduceBucketed(groups.dp, grads.dense, common),
    allReduceBucketed(groups.edp, grads.expert, common),
  ]);
  return { dense, expert };
}
