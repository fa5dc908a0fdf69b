// Transport of the simulated backend: N ranks on worker_threads, one
// MessagePort between every pair. Each contribution is copied once into a
// fresh SharedArrayBuffer and posted (shared, not cloned) to its readers.
// Reductions combine contributions in rank order on every rank, so all ranks
// get bit-identical results.
//
// Blocking collectives use a second mesh of ports that no listener drains:
// a rank posts its parts, bumps each receiver's slot in a shared Int32Array
// and Atomics.notify()s it; a receiver pulls messages with
// receiveMessageOnPort() and sleeps in Atomics.wait() until its slot changes.
import { type MessagePort, receiveMessageOnPort } from "node:worker_threads";

import {
  type BlockingTransport,
  type CollectiveArray,
  type ReduceOp,
  type SignatureCheck,
  signaturesAgree,
  type Transport,
} from "./communicator.js";
import { ParallelError } from "./errors.js";

interface Packet {
  /** communicator id */
  c: string;
  /** sequence number of the raw transfer on that communicator */
  s: number;
  /** sender's world rank */
  f: number;
  d: CollectiveArray | null;
}

type Ctor = new (x: SharedArrayBuffer | number) => CollectiveArray;

function shared(src: CollectiveArray, start = 0, end = src.length): CollectiveArray {
  const C = src.constructor as Ctor;
  const n = end - start;
  const v = new C(new SharedArrayBuffer(n * src.BYTES_PER_ELEMENT));
  v.set(src.subarray(start, end));
  return v;
}

/** One worker's end of the mesh: posts packets and matches incoming ones to waiting receivers. */
export class Mailbox {
  private readonly arrived = new Map<string, Packet>();
  private readonly waiting = new Map<string, (p: Packet) => void>();

  constructor(
    readonly worldRank: number,
    private readonly ports: readonly (MessagePort | null)[],
    private readonly timeoutMs: number,
  ) {
    ports.forEach((port) => {
      port?.on("message", (p: Packet) => {
        const key = `${p.c}|${p.s}|${p.f}`;
        const w = this.waiting.get(key);
        if (w) {
          this.waiting.delete(key);
          w(p);
        } else this.arrived.set(key, p);
      });
    });
  }

  post(to: number, packet: Packet): void {
    if (to === this.worldRank) {
      const key = `${packet.c}|${packet.s}|${packet.f}`;
      const w = this.waiting.get(key);
      if (w) {
        this.waiting.delete(key);
        w(packet);
      } else this.arrived.set(key, packet);
      return;
    }
    const port = this.ports[to];
    if (!port)
      throw new ParallelError("COMM_FAILED", `simulated rank ${this.worldRank}: no port to rank ${to}`);
    port.postMessage(packet);
  }

  receive(comm: string, seq: number, from: number): Promise<Packet> {
    const key = `${comm}|${seq}|${from}`;
    const p = this.arrived.get(key);
    if (p) {
      this.arrived.delete(key);
      return Promise.resolve(p);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        reject(
          new ParallelError(
            "TIMEOUT",
            `simulated rank ${this.worldRank} waited ${this.timeoutMs} ms for world rank ${from} ` +
              "(did that rank skip this collective or call them in a different order?)",
          ),
        );
      }, this.timeoutMs);
      this.waiting.set(key, (packet) => {
        clearTimeout(timer);
        resolve(packet);
      });
    });
  }
}

const packetKey = (p: Packet) => `${p.c}|${p.s}|${p.f}`;

/** The blocking mailbox of one worker (see the file comment). */
export class SyncMailbox {
  private readonly stash = new Map<string, Packet>();

  constructor(
    readonly worldRank: number,
    private readonly ports: readonly (MessagePort | null)[],
    /** One slot per world rank, bumped whenever a packet is posted to that rank. */
    private readonly signals: Int32Array,
    private readonly timeoutMs: number,
  ) {}

  post(to: number, packet: Packet): void {
    if (to === this.worldRank) {
      this.stash.set(packetKey(packet), packet);
      return;
    }
    const port = this.ports[to];
    if (!port)
      throw new ParallelError("COMM_FAILED", `simulated rank ${this.worldRank}: no port to rank ${to}`);
    port.postMessage(packet);
    Atomics.add(this.signals, to, 1);
    Atomics.notify(this.signals, to);
  }

  receive(comm: string, seq: number, from: number): Packet {
    const key = `${comm}|${seq}|${from}`;
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const p = this.stash.get(key);
      if (p) {
        this.stash.delete(key);
        return p;
      }
      // Read the slot before draining: a packet posted after the drain changes
      // it, so the wait below returns at once instead of missing the wake-up.
      const seen = Atomics.load(this.signals, this.worldRank);
      this.drain();
      if (this.stash.has(key)) continue;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new ParallelError(
          "TIMEOUT",
          `simulated rank ${this.worldRank} waited ${this.timeoutMs} ms for world rank ${from} in a blocking ` +
            "collective (did that rank skip it or call the collectives in a different order?)",
        );
      }
      Atomics.wait(this.signals, this.worldRank, seen, left);
    }
  }

  private drain(): void {
    for (const port of this.ports) {
      if (!port) continue;
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
        const p = m.message as Packet;
        this.stash.set(packetKey(p), p);
      }
    }
  }
}

function combine(op: ReduceOp, acc: CollectiveArray, x: CollectiveArray, at = 0): void {
  const n = acc.length;
  if (op === "sum") for (let i = 0; i < n; i++) acc[i]! += x[at + i]!;
  else if (op === "max") for (let i = 0; i < n; i++) acc[i] = Math.max(acc[i]!, x[at + i]!);
  else for (let i = 0; i < n; i++) acc[i] = Math.min(acc[i]!, x[at + i]!);
}

export class SimulatedTransport implements Transport {
  readonly backend = "simulated" as const;
  readonly size: number;
  private seq = 0;
  private syncSeq = 0;
  private splits = 0;
  readonly blocking: BlockingTransport | null;

  /**
   * @param id unique id of the communicator, equal on all its members
   * @param members world ranks of the members, in group-rank order
   * @param rank this worker's index in `members`
   */
  constructor(
    private readonly mailbox: Mailbox,
    private readonly id: string,
    private readonly members: readonly number[],
    readonly rank: number,
    private readonly syncMailbox: SyncMailbox | null = null,
  ) {
    this.size = members.length;
    this.blocking = syncMailbox ? this.makeBlocking(syncMailbox) : null;
  }

  /** Blocking versions of the data-moving collectives (same results, bit for bit). */
  private makeBlocking(box: SyncMailbox): BlockingTransport {
    const exchange = (parts: (CollectiveArray | null)[]): (CollectiveArray | null)[] => {
      const s = ++this.syncSeq;
      const me = this.members[this.rank]!;
      this.members.forEach((to, j) => {
        box.post(to, { c: this.id, s, f: me, d: parts[j] ?? null });
      });
      return this.members.map((from) => box.receive(this.id, s, from).d);
    };
    const checked = (check: SignatureCheck | undefined): boolean => {
      if (!check) return true;
      gather(check.sig, check.all);
      return signaturesAgree(check.all, this.size);
    };
    const gather = (send: CollectiveArray, recv: CollectiveArray): void => {
      const mine = shared(send);
      exchange(this.members.map(() => mine)).forEach((a, r) => {
        recv.set(a!, r * send.length);
      });
    };
    return {
      allReduce: (send, recv, op, check) => {
        if (!checked(check)) return false;
        const mine = shared(send);
        const all = exchange(this.members.map(() => mine));
        recv.set(all[0]!);
        for (let r = 1; r < all.length; r++) combine(op, recv, all[r]!);
        return true;
      },
      allGather: (send, recv, check) => {
        if (!checked(check)) return false;
        gather(send, recv);
        return true;
      },
      allToAll: (send, recv, check) => {
        if (!checked(check)) return false;
        const n = send.length / this.size;
        exchange(this.members.map((_, j) => shared(send, j * n, (j + 1) * n))).forEach((a, r) => {
          recv.set(a!, r * n);
        });
        return true;
      },
      allToAllV: (send, sendCounts, sendDispls, recv, recvCounts, recvDispls) => {
        const all = exchange(
          this.members.map((_, j) => shared(send, sendDispls[j]!, sendDispls[j]! + sendCounts[j]!)),
        );
        all.forEach((a, r) => {
          if (a!.length !== recvCounts[r]) {
            throw new ParallelError(
              "COMM_FAILED",
              `allToAllV: rank ${r} sent ${a!.length} elements, this rank expected ${recvCounts[r]}`,
            );
          }
          recv.set(a!, recvDispls[r]!);
        });
      },
    };
  }

  /** Sends `parts[j]` to group rank j (null: nothing) and returns what every rank sent to this one. */
  private async exchange(
    _what: string,
    parts: (CollectiveArray | null)[],
  ): Promise<(CollectiveArray | null)[]> {
    const s = ++this.seq;
    const me = this.members[this.rank]!;
    this.members.forEach((to, j) => {
      this.mailbox.post(to, { c: this.id, s, f: me, d: parts[j] ?? null });
    });
    const got = await Promise.all(this.members.map((from) => this.mailbox.receive(this.id, s, from)));
    return got.map((p) => p.d);
  }

  /** The fused argument check: signature allGather, then whether to go on. */
  private async checked(check: SignatureCheck | undefined): Promise<boolean> {
    if (!check) return true;
    await this.allGather(check.sig, check.all);
    return signaturesAgree(check.all, this.size);
  }

  async allReduce(
    send: CollectiveArray,
    recv: CollectiveArray,
    op: ReduceOp,
    check?: SignatureCheck,
  ): Promise<boolean> {
    if (!(await this.checked(check))) return false;
    const mine = shared(send);
    const all = await this.exchange(
      "allReduce",
      this.members.map(() => mine),
    );
    recv.set(all[0]!);
    for (let r = 1; r < all.length; r++) combine(op, recv, all[r]!);
    return true;
  }

  async reduceScatter(
    send: CollectiveArray,
    recv: CollectiveArray,
    op: ReduceOp,
    check?: SignatureCheck,
  ): Promise<boolean> {
    if (!(await this.checked(check))) return false;
    const n = recv.length;
    const all = await this.exchange(
      "reduceScatter",
      this.members.map((_, j) => shared(send, j * n, (j + 1) * n)),
    );
    recv.set(all[0]!);
    for (let r = 1; r < all.length; r++) combine(op, recv, all[r]!);
    return true;
  }

  async allGather(send: CollectiveArray, recv: CollectiveArray, check?: SignatureCheck): Promise<boolean> {
    if (!(await this.checked(check))) return false;
    const mine = shared(send);
    const all = await this.exchange(
      "allGather",
      this.members.map(() => mine),
    );
    all.forEach((a, r) => {
      recv.set(a!, r * send.length);
    });
    return true;
  }

  async allToAll(send: CollectiveArray, recv: CollectiveArray, check?: SignatureCheck): Promise<boolean> {
    if (!(await this.checked(check))) return false;
    const n = send.length / this.size;
    const all = await this.exchange(
      "allToAll",
      this.members.map((_, j) => shared(send, j * n, (j + 1) * n)),
    );
    all.forEach((a, r) => {
      recv.set(a!, r * n);
    });
    return true;
  }

  async allToAllV(
    send: CollectiveArray,
    sendCounts: Int32Array,
    sendDispls: Int32Array,
    recv: CollectiveArray,
    recvCounts: Int32Array,
    recvDispls: Int32Array,
  ): Promise<void> {
    const all = await this.exchange(
      "allToAllV",
      this.members.map((_, j) => shared(send, sendDispls[j]!, sendDispls[j]! + sendCounts[j]!)),
    );
    all.forEach((a, r) => {
      if (a!.length !== recvCounts[r]) {
        throw new ParallelError(
          "COMM_FAILED",
          `allToAllV: rank ${r} sent ${a!.length} elements, this rank expected ${recvCounts[r]}`,
        );
      }
      recv.set(a!, recvDispls[r]!);
    });
  }

  async broadcast(buf: CollectiveArray, root: number, check?: SignatureCheck): Promise<boolean> {
    if (!(await this.checked(check))) return false;
    const parts = this.members.map(() => (this.rank === root ? shared(buf) : null));
    const all = await this.exchange("broadcast", parts);
    if (this.rank !== root) buf.set(all[root]!);
    return true;
  }

  async barrier(check?: SignatureCheck): Promise<boolean> {
    if (!(await this.checked(check))) return false;
    await this.exchange(
      "barrier",
      this.members.map(() => null),
    );
    return true;
  }

  async split(color: number | null, key: number): Promise<Transport | null> {
    const mine = Int32Array.of(color ?? -1, key);
    const all = await this.exchange(
      "split",
      this.members.map(() => shared(mine)),
    );
    const n = ++this.splits;
    if (color === null) return null;
    const peers = all
      .map((a, r) => ({ r, color: a![0]!, key: a![1]! }))
      .filter((p) => p.color === color)
      .sort((a, b) => a.key - b.key || a.r - b.r);
    const members = peers.map((p) => this.members[p.r]!);
    return new SimulatedTransport(
      this.mailbox,
      `${this.id}.${n}:${color}`,
      members,
      peers.findIndex((p) => p.r === this.rank),
      this.syncMailbox,
    );
  }

  free(): void {}
}
