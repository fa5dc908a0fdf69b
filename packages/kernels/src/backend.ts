import { totalmem } from "node:os";

import { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";
import type { BackendValues, DataId, DataType, TensorInfo } from "@tensorflow/tfjs-core";

import type { NativeAddon } from "./addon.js";
import { BufferPool } from "./buffer_pool.js";

/** Name under which the native backend registers with tfjs. */
export const NATIVE_BACKEND_NAME = "polymoe-native";

/**
 * Idle output buffers kept for reuse, in bytes: POLYMOE_POOL_MB, else an
 * eighth of the machine's memory shared by the ranks on this host. The pool
 * holds only buffers that steps used and freed, by size class, evicting the
 * least recently released first; smaller than a step's working set, every step
 * faults in its activations anew (measured: a dense-base step 1.47x slower
 * with 512 MB of exact-size buffers). Processes sharing a host should share
 * it: each idle byte here is a byte the others cannot use.
 */
export function poolCapacityBytes(env: NodeJS.ProcessEnv = process.env, totalBytes = totalmem()): number {
  const raw = env.POLYMOE_POOL_MB;
  if (raw !== undefined && raw !== "") {
    const mb = Number(raw);
    if (Number.isFinite(mb) && mb >= 0) return mb * 1024 * 1024;
  }
  const localRanks = Math.max(1, Number(env.OMPI_COMM_WORLD_LOCAL_SIZE ?? 1) || 1);
  return Math.floor(totalBytes / 8 / localRanks);
}

/**
 * The stock tfjs cpu backend with its hot kernels replaced by native code.
 * Storage is the cpu backend's (one Float32Array per tensor), so every
 * inherited JS kernel keeps working and native kernels read and write the same
 * arrays without copying.
 */
export class NativeBackend extends MathBackendCPU {
  readonly pool = new BufferPool(poolCapacityBytes());

  constructor(readonly native: NativeAddon) {
    super();
    // The cpu backend prints a hint to install tfjs-node on first use; this
    // backend is the answer to that hint.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  override write(values: BackendValues, shape: number[], dtype: DataType): DataId {
    const id = super.write(values, shape, dtype);
    this.pool.retain(values);
    return id;
  }

  override move(
    dataId: DataId,
    values: BackendValues,
    shape: number[],
    dtype: DataType,
    refCount: number,
  ): void {
    super.move(dataId, values, shape, dtype, refCount);
    this.pool.retain(values);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId).values : undefined;
    const disposed = super.disposeData(dataId, force);
    if (values !== undefined && !this.data.has(dataId)) this.pool.release(values);
    return disposed;
  }

  override readSync(dataId: DataId): BackendValues {
    if (this.data.has(dataId)) this.pool.expose(this.data.get(dataId).values);
    return super.readSync(dataId);
  }

  /** The Float32Array behind a float32 tensor (zero-copy), or null for other dtypes/storage. */
  f32(t: TensorInfo): Float32Array | null {
    if (t.dtype !== "float32") return null;
    const v = this.data.get(t.dataId).values;
    return v instanceof Float32Array ? v : null;
  }

  /** The Int32Array behind an int32 tensor, or null. */
  i32(t: TensorInfo): Int32Array | null {
    if (t.dtype !== "int32") return null;
    const v = this.data.get(t.dataId).values;
    return v instanceof Int32Array ? v : null;
  }

  /**
   * Storage for a kernel output of n float32 elements. Large ones come from
   * the pool with unspecified contents: the kernel must write every element.
   */
  allocF32(n: number): Float32Array {
    return this.pool.alloc(n);
  }

  /** Registers values as a new tensor of this backend. */
  output(shape: number[], values: Float32Array, dtype: DataType = "float32"): TensorInfo {
    return this.makeTensorInfo(shape, dtype, values);
  }
}
