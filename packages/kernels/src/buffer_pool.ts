/**
 * Recycles the Float32Array storage of native kernel outputs.
 *
 * Why: a fresh multi-megabyte ArrayBuffer is page-faulted (and zeroed by the
 * OS) on first touch, and a disposed tensor's buffer is only freed at V8's next
 * GC, so a training step would otherwise fault in all of its activations anew
 * every step (measured: 1024^3 matMul at 0.76x of bare sgemm without the pool).
 *
 * Safety rules (see NativeBackend):
 * - only buffers this pool handed out are ever recycled;
 * - a buffer returns to the pool when the last tensor entry referencing it is
 *   gone (entries are counted per buffer, because the cpu backend's slice
 *   makes subarray views that share their source's buffer);
 * - a buffer whose contents were handed to user code (dataSync/data/
 *   bufferSync go through readSync) is never recycled.
 */
export class BufferPool {
  /** Idle buffers by size class (bytes), most recently released last. */
  private readonly free = new Map<number, ArrayBuffer[]>();
  /** Every idle buffer, least recently released first (for eviction). */
  private readonly idle = new Set<ArrayBuffer>();
  private readonly mine = new WeakSet<ArrayBuffer>();
  private readonly exposed = new WeakSet<ArrayBuffer>();
  private readonly owners = new WeakMap<ArrayBuffer, number>();
  private pooled = 0;
  hits = 0;
  misses = 0;
  evicted = 0;

  constructor(
    /** Upper bound on bytes held idle in the pool; the least recently released go first. */
    readonly capacityBytes: number,
    /** Smaller outputs are plain zeroed arrays, not pooled. */
    readonly minElements = 1024,
  ) {}

  /**
   * The size class of an n-element request, in bytes: n rounded up to one of
   * four steps per power of two (at most 25% slack), so that the many nearby
   * shapes of length-bucketed batches share buffers instead of each leaving
   * its own exact size behind in the pool.
   */
  static classBytes(n: number): number {
    if (n <= 4) return n * 4;
    const top = 2 ** Math.floor(Math.log2(n - 1)); // largest power of two below n
    const step = top / 4;
    return Math.ceil(n / step) * step * 4;
  }

  /** A float32 array of n elements with unspecified contents (the caller overwrites all of it). */
  alloc(n: number): Float32Array {
    if (n < this.minElements) return new Float32Array(n);
    const bytes = BufferPool.classBytes(n);
    const reused = this.free.get(bytes)?.pop();
    if (reused) {
      this.idle.delete(reused);
      this.pooled -= bytes;
      this.hits++;
      return new Float32Array(reused, 0, n);
    }
    this.misses++;
    const buf = Buffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer;
    this.mine.add(buf);
    return new Float32Array(buf, 0, n);
  }

  /** A tensor entry now references this storage. */
  retain(values: unknown): void {
    const buf = bufferOf(values);
    if (buf && this.mine.has(buf)) this.owners.set(buf, (this.owners.get(buf) ?? 0) + 1);
  }

  /** A tensor entry referencing this storage is gone; recycle when it was the last. */
  release(values: unknown): void {
    const buf = bufferOf(values);
    if (!buf || !this.mine.has(buf)) return;
    const left = (this.owners.get(buf) ?? 1) - 1;
    if (left > 0) {
      this.owners.set(buf, left);
      return;
    }
    this.owners.delete(buf);
    const bytes = buf.byteLength;
    if (this.exposed.has(buf) || bytes > this.capacityBytes) return;
    // Make room by dropping the least recently released idle buffers: the
    // pool follows the shapes the current steps use.
    for (const old of this.idle) {
      if (this.pooled + bytes <= this.capacityBytes) break;
      this.drop(old);
      this.evicted++;
    }
    let list = this.free.get(bytes);
    if (!list) {
      list = [];
      this.free.set(bytes, list);
    }
    list.push(buf);
    this.idle.add(buf);
    this.pooled += bytes;
  }

  /** User code may hold this storage from now on: never recycle it. */
  expose(values: unknown): void {
    const buf = bufferOf(values);
    if (buf && this.mine.has(buf)) this.exposed.add(buf);
  }

  /** Drops every idle buffer (memory returns to the OS at the next GC). */
  clear(): void {
    this.free.clear();
    this.idle.clear();
    this.pooled = 0;
  }

  stats(): { pooledBytes: number; idleBuffers: number; hits: number; misses: number; evicted: number } {
    return {
      pooledBytes: this.pooled,
      idleBuffers: this.idle.size,
      hits: this.hits,
      misses: this.misses,
      evicted: this.evicted,
    };
  }

  private drop(buf: ArrayBuffer): void {
    this.idle.delete(buf);
    const list = this.free.get(buf.byteLength);
    if (list) {
      const i = list.indexOf(buf);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.free.delete(buf.byteLength);
    }
    this.pooled -= buf.byteLength;
  }
}

function bufferOf(values: unknown): ArrayBuffer | null {
  if (values instanceof Float32Array && values.buffer instanceof ArrayBuffer) return values.buffer;
  return null;
}
