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
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly mine = new WeakSet<ArrayBuffer>();
  private readonly exposed = new WeakSet<ArrayBuffer>();
  private readonly owners = new WeakMap<ArrayBuffer, number>();
  private pooled = 0;
  hits = 0;
  misses = 0;

  constructor(
    /** Upper bound on bytes held idle in the pool. */
    readonly capacityBytes: number,
    /** Smaller outputs are plain zeroed arrays, not pooled. */
    readonly minElements = 1024,
  ) {}

  /** A float32 array of n elements with unspecified contents (the caller overwrites all of it). */
  alloc(n: number): Float32Array {
    if (n < this.minElements) return new Float32Array(n);
    const bytes = n * 4;
    const list = this.free.get(bytes);
    const reused = list?.pop();
    if (reused) {
      this.pooled -= bytes;
      this.hits++;
      return new Float32Array(reused);
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
    if (this.exposed.has(buf) || this.pooled + buf.byteLength > this.capacityBytes) return;
    let list = this.free.get(buf.byteLength);
    if (!list) {
      list = [];
      this.free.set(buf.byteLength, list);
    }
    list.push(buf);
    this.pooled += buf.byteLength;
  }

  /** User code may hold this storage from now on: never recycle it. */
  expose(values: unknown): void {
    const buf = bufferOf(values);
    if (buf && this.mine.has(buf)) this.exposed.add(buf);
  }

  /** Drops every idle buffer (memory returns to the OS at the next GC). */
  clear(): void {
    this.free.clear();
    this.pooled = 0;
  }

  stats(): { pooledBytes: number; hits: number; misses: number } {
    return { pooledBytes: this.pooled, hits: this.hits, misses: this.misses };
  }
}

function bufferOf(values: unknown): ArrayBuffer | null {
  if (values instanceof Float32Array && values.buffer instanceof ArrayBuffer) return values.buffer;
  return null;
}
