// Asynchronous write-back for TieredStore: a worker thread writes evicted
// tensors (temporary file, fsync, rename — the same atomic write as the
// synchronous path) while the main thread computes. The evicted buffer is
// transferred to the worker (no copy); completions are counted in shared
// memory so the store can check or wait for them without the event loop
// (training steps are synchronous tfjs code).
import { Worker } from "node:worker_threads";

const SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const status = new Int32Array(workerData.status);
const message = new Uint8Array(workerData.message);
parentPort.on("message", ({ file, buffer, fsync }) => {
  if (Atomics.load(status, 1) === 0) {
    const tmp = file + ".tmp-" + process.pid + "-w";
    let fd = -1;
    try {
      fd = fs.openSync(tmp, "w");
      const bytes = new Uint8Array(buffer);
      let off = 0;
      while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
      if (fsync) fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = -1;
      fs.renameSync(tmp, file);
    } catch (e) {
      if (fd >= 0) { try { fs.closeSync(fd); } catch {} }
      try { fs.rmSync(tmp, { force: true }); } catch {}
      const text = Buffer.from(JSON.stringify({ code: e.code || "", message: String(e.message), bytes: buffer.byteLength, file }));
      const n = Math.min(text.length, message.length);
      message.set(text.subarray(0, n));
      Atomics.store(status, 2, n);
      Atomics.store(status, 1, 1);
    }
  }
  Atomics.add(status, 0, 1);
  Atomics.notify(status, 0);
});
`;

/** A failed background write: the errno code, the file and the bytes. */
export interface WriteFailure {
  code: string;
  message: string;
  file: string;
  bytes: number;
}

export class BackgroundWriter {
  private readonly worker: Worker;
  /** [writes completed, failed flag, failure message length]. */
  private readonly status: Int32Array;
  private readonly message: Uint8Array;
  /** Writes posted so far (the sequence number of the last one). */
  posted = 0;

  constructor() {
    const status = new SharedArrayBuffer(12);
    const message = new SharedArrayBuffer(4096);
    this.status = new Int32Array(status);
    this.message = new Uint8Array(message);
    this.worker = new Worker(SOURCE, { eval: true, workerData: { status, message } });
    this.worker.unref();
  }

  /** Queues `data` (its whole buffer is transferred: unusable here afterwards); returns its sequence number. */
  write(file: string, data: Float32Array, fsync: boolean): number {
    const buffer = data.buffer as ArrayBuffer;
    this.worker.postMessage({ file, buffer, fsync }, [buffer]);
    return ++this.posted;
  }

  /** Writes completed so far. */
  done(): number {
    return Atomics.load(this.status, 0);
  }

  /** Blocks until write `seq` (and every earlier one) completed. */
  waitFor(seq: number): void {
    for (let d = this.done(); d < seq; d = this.done()) Atomics.wait(this.status, 0, d, 1000);
  }

  /** The first failure, if a write failed (later writes are skipped). */
  failure(): WriteFailure | null {
    if (Atomics.load(this.status, 1) === 0) return null;
    const n = Atomics.load(this.status, 2);
    try {
      return JSON.parse(Buffer.from(this.message.slice(0, n)).toString("utf8")) as WriteFailure;
    } catch {
      return { code: "", message: "unknown write failure", file: "", bytes: 0 };
    }
  }

  close(): void {
    void this.worker.terminate();
  }
}
