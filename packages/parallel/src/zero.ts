// ZeRO stages 1 and 2 over flat buffers (Rajbhandari et al., 2020).
//
// The parameters of one group (dense, or this rank's experts) live in one flat
// float32 buffer of `paddedNumel` elements, split into `groupSize` equal shards;
// rank r owns shard r: it keeps the optimizer state of that shard only
// (stage 1) and, in stage 2, only the reduced gradient of that shard.
//
//   stage 1: allReduce(grads) -> update own shard -> allGather(params)
//   stage 2: reduceScatter(grads) -> update own shard -> allGather(params)
//
// The dense group is sharded over the data-parallel group, the expert group
// over the expert-data-parallel group; both scale gradients by 1 / dp.
import type { Communicator } from "./communicator.js";
import { ParallelError } from "./errors.js";
import { commBuffer } from "./mpi.js";

export interface ZeroPartition {
  /** Real elements of the flat buffer. */
  numel: number;
  groupSize: number;
  /** Elements per shard (a multiple of the alignment). */
  shardSize: number;
  /** shardSize * groupSize >= numel; the tail is zero padding. */
  paddedNumel: number;
  /** [start, end) of each rank's shard; `end - start` is shardSize, the last may cover padding. */
  ranges: { start: number; end: number }[];
}

/** Splits a flat buffer of `numel` elements into `groupSize` equal shards. Pure. */
export function partitionFlat(
  numel: number,
  groupSize: number,
  options: { alignElements?: number } = {},
): ZeroPartition {
  const align = options.alignElements ?? 1;
  for (const [name, v, min] of [
    ["numel", numel, 0],
    ["groupSize", groupSize, 1],
    ["alignElements", align, 1],
  ] as const) {
    if (!Number.isInteger(v) || v < min) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        `partitionFlat: ${name} must be an integer >= ${min}, got ${v}`,
      );
    }
  }
  const per = Math.ceil(numel / groupSize);
  const shardSize = Math.ceil(per / align) * align;
  const paddedNumel = shardSize * groupSize;
  const ranges = [...Array(groupSize).keys()].map((r) => ({
    start: r * shardSize,
    end: (r + 1) * shardSize,
  }));
  return { numel, groupSize, shardSize, paddedNumel, ranges };
}

/** Offsets of consecutive tensors in a flat buffer. */
export function flatOffsets(sizes: readonly number[]): { offsets: number[]; numel: number } {
  const offsets: number[] = [];
  let numel = 0;
  sizes.forEach((n, i) => {
    if (!Number.isInteger(n) || n < 0) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        `flatOffsets: sizes[${i}] must be a non-negative integer, got ${n}`,
      );
    }
    offsets.push(numel);
    numel += n;
  });
  return { offsets, numel };
}

export interface ZeroGroupOptions {
  /** The group the shards are spread over: dp for dense parameters, edp for expert parameters. */
  comm: Communicator;
  stage: 1 | 2;
  /** Element counts of the group's parameters, in a fixed order equal on every rank. */
  sizes: readonly number[];
  /** Factor applied to the summed gradients: 1 / dp.size for both groups (see gradientScale). */
  gradScale: number;
  /** Shard sizes are rounded up to a multiple of this. Default 16 (64-byte rows). */
  alignElements?: number;
}

/**
 * One ZeRO-partitioned parameter group on one rank. The model's parameters and
 * gradients alias `paramViews` / `gradViews` (views into the flat buffers);
 * the optimizer updates `paramShard` from `gradShard`, keeping state only for
 * the shard (`partition.shardSize` elements).
 *
 * Per step: write gradients into gradViews (accumulate), then
 *   await group.reduceGradients();        // gradShard now holds the mean gradient of the shard
 *   optimizer.update(group.paramShard, group.gradShard, offset = group.shardStart)
 *   await group.gatherParameters();       // every rank has the updated parameters
 *   group.zeroGradients();
 */
export class ZeroGroup {
  readonly partition: ZeroPartition;
  readonly stage: 1 | 2;
  /** Flat parameters, `partition.paddedNumel` elements (padding stays zero). */
  readonly params: Float32Array;
  /** Flat gradient accumulation buffer, `partition.paddedNumel` elements. */
  readonly grads: Float32Array;
  readonly paramViews: Float32Array[];
  readonly gradViews: Float32Array[];
  /** This rank's shard of `params` (a view). */
  readonly paramShard: Float32Array;
  /** The reduced, scaled gradient of this rank's shard: a view of `grads` (stage 1) or its own buffer (stage 2). */
  readonly gradShard: Float32Array;
  /** Index in the flat buffer of the shard's first element. */
  readonly shardStart: number;
  private readonly comm: Communicator;
  private readonly gradScale: number;

  constructor(options: ZeroGroupOptions) {
    const { comm, stage, sizes, gradScale } = options;
    if (stage !== 1 && stage !== 2) {
      throw new ParallelError("INVALID_ARGUMENT", `ZeroGroup: stage must be 1 or 2, got ${String(stage)}`);
    }
    if (!Number.isFinite(gradScale) || gradScale <= 0) {
      throw new ParallelError(
        "INVALID_ARGUMENT",
        `ZeroGroup: gradScale must be > 0 (1 / dp.size), got ${gradScale}`,
      );
    }
    const { offsets, numel } = flatOffsets(sizes);
    this.partition = partitionFlat(numel, comm.size, { alignElements: options.alignElements ?? 16 });
    this.stage = stage;
    this.comm = comm;
    this.gradScale = gradScale;
    this.params = commBuffer(this.partition.paddedNumel);
    this.grads = commBuffer(this.partition.paddedNumel);
    this.paramViews = sizes.map((n, i) => this.params.subarray(offsets[i]!, offsets[i]! + n));
    this.gradViews = sizes.map((n, i) => this.grads.subarray(offsets[i]!, offsets[i]! + n));
    const { start, end } = this.partition.ranges[comm.rank]!;
    this.shardStart = start;
    this.paramShard = this.params.subarray(start, end);
    this.gradShard = stage === 1 ? this.grads.subarray(start, end) : commBuffer(end - start);
  }

  /** Stage 1: allReduce of the whole gradient; stage 2: reduceScatter into gradShard. Then scales gradShard. */
  async reduceGradients(): Promise<void> {
    if (this.stage === 1) await this.comm.allReduce(this.grads);
    else await this.comm.reduceScatter(this.grads, { out: this.gradShard });
    const g = this.gradShard;
    for (let i = 0; i < g.length; i++) g[i]! *= this.gradScale;
  }

  /** allGather of every rank's updated shard into `params`. */
  async gatherParameters(): Promise<void> {
    await this.comm.allGather(this.paramShard.slice(), { out: this.params });
  }

  zeroGradients(): void {
    this.grads.fill(0);
    if (this.stage === 2) this.gradShard.fill(0);
  }
}
