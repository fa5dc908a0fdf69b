// The MoE all-to-all: moves dispatched tokens to the ranks that own their
// experts and the expert outputs back, across one expert-parallel group.
//
// Legend: (e) global expert, (l) local expert of a rank, (r) rank of the
// expert-parallel group, (c) capacity slot, (m) model dim, (t) token row.
// E experts, ep ranks, El = E / ep experts per rank; expert e lives on rank
// floor(e / El) as its local expert e % El, so the experts of one destination
// rank are contiguous in a [E, C, M] buffer: [E, C, M] = [ep, El, C, M].
//
// Shape trace of one MoE layer at expert-parallel size ep (capacity mode):
//
// | step                         | buffer              | shape            | sharded along ep                      |
// | ---------------------------- | ------------------- | ---------------- | ------------------------------------- |
// | 1 route + dispatch (local)   | dispatchedECM       | [E, C, M]        | tokens: this rank's batch             |
// | 2 exchangeToExperts          | expertInputLRCM     | [El, ep, C, M]   | experts: this rank's El, all tokens   |
// | 3 experts (local)            | expertOutputLRCM    | [El, ep, C, M]   | experts                               |
// | 4 exchangeFromExperts        | combinedECM         | [E, C, M]        | tokens: this rank's batch             |
// | 5 combine (local)            | output              | [tokens, M]      | tokens                                |
//
// Backward runs the same exchanges in reverse: the gradient of step 4 is
// exchangeToExperts and that of step 2 is exchangeFromExperts. The two are
// permutations of the same elements across ranks, each the other's adjoint
// (<A x, y> = <x, Aᵀ y>) and inverse.
//
// Dropless mode sends only the rows that exist: tokens sorted by expert with
// per-expert counts; the counts travel first (an allToAll of Int32Array) so
// each rank can size its receive buffer, then the rows (allToAllV).
import type { Communicator } from "./communicator.js";
import { ParallelError } from "./errors.js";

export interface ExpertBufferShape {
  /** E: experts of the layer (all ranks of the group together). */
  experts: number;
  /** C: token slots per expert per rank. */
  capacity: number;
  /** M: model dimension. */
  dModel: number;
}

function check(
  ep: Communicator,
  shape: ExpertBufferShape,
  buf: Float32Array,
  what: string,
  fn: string,
): number {
  if (!(buf instanceof Float32Array)) {
    throw new ParallelError("INVALID_ARGUMENT", `${fn}: ${what} must be a Float32Array`);
  }
  for (const k of ["experts", "capacity", "dModel"] as const) {
    const v = shape[k];
    if (!Number.isInteger(v) || v < (k === "capacity" ? 0 : 1)) {
      throw new ParallelError("INVALID_ARGUMENT", `${fn}: shape.${k} must be a positive integer, got ${v}`);
    }
  }
  if (shape.experts % ep.size !== 0) {
    throw new ParallelError(
      "INVALID_ARGUMENT",
      `${fn}: ${shape.experts} experts cannot be split over an expert-parallel group of ${ep.size} ranks ` +
        "(experts must be a multiple of ep)",
    );
  }
  const n = shape.experts * shape.capacity * shape.dModel;
  if (buf.length !== n) {
    throw new ParallelError(
      "INVALID_ARGUMENT",
      `${fn}: ${what} has ${buf.length} elements, expected experts*capacity*dModel = ` +
        `${shape.experts}*${shape.capacity}*${shape.dModel} = ${n}`,
    );
  }
  return shape.experts / ep.size;
}

/** Copies [A, B, blk] to [B, A, blk]. */
function swapBlocks(src: Float32Array, dst: Float32Array, a: number, b: number, blk: number): void {
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) {
      const from = (i * b + j) * blk;
      dst.set(src.subarray(from, from + blk), (j * a + i) * blk);
    }
  }
}

/**
 * Step 2 (and the backward of step 4): `<float32>[E, C, M]` dispatched on every
 * rank -> `<float32>[El, ep, C, M]`: this rank's experts, each with the C slots
 * of every source rank in rank order. One allToAll over `ep`.
 */
export async function exchangeToExperts(
  ep: Communicator,
  dispatchedECM: Float32Array,
  shape: ExpertBufferShape,
): Promise<Float32Array> {
  const el = check(ep, shape, dispatchedECM, "dispatchedECM", "exchangeToExperts");
  const recvRLCM = await ep.allToAll(dispatchedECM);
  const expertInputLRCM = new Float32Array(recvRLCM.length);
  swapBlocks(recvRLCM, expertInputLRCM, ep.size, el, shape.capacity * shape.dModel);
  return expertInputLRCM;
}

/**
 * Step 4 (and the backward of step 2): `<float32>[El, ep, C, M]` expert outputs
 * -> `<float32>[E, C, M]` back on the ranks that sent the tokens. The adjoint
 * and inverse of exchangeToExperts.
 */
export async function exchangeFromExperts(
  ep: Communicator,
  expertOutputLRCM: Float32Array,
  shape: ExpertBufferShape,
): Promise<Float32Array> {
  const el = check(ep, shape, expertOutputLRCM, "expertOutputLRCM", "exchangeFromExperts");
  const sendRLCM = new Float32Array(expertOutputLRCM.length);
  swapBlocks(expertOutputLRCM, sendRLCM, el, ep.size, shape.capacity * shape.dModel);
  return ep.allToAll(sendRLCM);
}

/** What the dropless backward exchange needs to know from the forward one. */
export interface DroplessPlan {
  experts: number;
  dModel: number;
  /** `<int32>[E]`: rows this rank sent to each global expert. */
  countsE: Int32Array;
  /** `<int32>[El, ep]`: rows each source rank sent to each local expert. */
  countsLR: Int32Array;
}

function rowsPerRank(countsE: Int32Array, ranks: number, el: number): number[] {
  return [...Array(ranks).keys()].map((r) => {
    let s = 0;
    for (let l = 0; l < el; l++) s += countsE[r * el + l]!;
    return s;
  });
}

/**
 * Dropless step 2: `tokensTM` holds this rank's rows sorted by global expert,
 * `countsE[e]` of them for expert e (`<float32>[sum(countsE), M]`). Returns this
 * rank's experts' rows, expert-major then source rank (`<float32>[rows, M]`,
 * rows of local expert l from rank r counted by `plan.countsLR[l * ep + r]`).
 * One allToAll of counts, one allToAllV of rows.
 */
export async function exchangeTokensToExperts(
  ep: Communicator,
  tokensTM: Float32Array,
  countsE: Int32Array,
  dModel: number,
): Promise<{ expertInputTM: Float32Array; plan: DroplessPlan }> {
  const fn = "exchangeTokensToExperts";
  if (!(countsE instanceof Int32Array))
    throw new ParallelError("INVALID_ARGUMENT", `${fn}: countsE must be an Int32Array`);
  const experts = countsE.length;
  if (experts % ep.size !== 0) {
    throw new ParallelError(
      "INVALID_ARGUMENT",
      `${fn}: countsE has ${experts} experts, not a multiple of the expert-parallel size ${ep.size}`,
    );
  }
  if (!Number.isInteger(dModel) || dModel < 1) {
    throw new ParallelError("INVALID_ARGUMENT", `${fn}: dModel must be a positive integer, got ${dModel}`);
  }
  let rows = 0;
  countsE.forEach((c, e) => {
    if (c < 0) throw new ParallelError("INVALID_ARGUMENT", `${fn}: countsE[${e}] is negative (${c})`);
    rows += c;
  });
  if (!(tokensTM instanceof Float32Array) || tokensTM.length !== rows * dModel) {
    throw new ParallelError(
      "INVALID_ARGUMENT",
      `${fn}: tokensTM must be a Float32Array of sum(countsE)*dModel = ${rows}*${dModel} = ${rows * dModel} elements, got ${
        tokensTM instanceof Float32Array ? tokensTM.length : String(tokensTM)
      }`,
    );
  }
  const p = ep.size;
  const el = experts / p;
  const countsRL = await ep.allToAll(countsE); // [ep(source), El]
  const sendCounts = rowsPerRank(countsE, p, el).map((r) => r * dModel);
  const recvCounts = rowsPerRank(countsRL, p, el).map((r) => r * dModel);
  const { data: recvRL } = await ep.allToAllV(tokensTM, { sendCounts, recvCounts });
  // Rank-major [r][l][rows] -> expert-major [l][r][rows].
  const countsLR = new Int32Array(el * p);
  const start = new Int32Array(p * el); // row offset of (r, l) in recvRL
  let off = 0;
  for (let r = 0; r < p; r++) {
    for (let l = 0; l < el; l++) {
      start[r * el + l] = off;
      off += countsRL[r * el + l]!;
      countsLR[l * p + r] = countsRL[r * el + l]!;
    }
  }
  const expertInputTM = new Float32Array(recvRL.length);
  let at = 0;
  for (let l = 0; l < el; l++) {
    for (let r = 0; r < p; r++) {
      const n = countsRL[r * el + l]! * dModel;
      const from = start[r * el + l]! * dModel;
      expertInputTM.set(recvRL.subarray(from, from + n), at);
      at += n;
    }
  }
  return { expertInputTM, plan: { experts, dModel, countsE: countsE.slice(), countsLR } };
}

/**
 * Dropless step 4 (and the backward of step 2): expert-major rows
 * (`<float32>[rows, M]`, laid out as exchangeTokensToExperts returned them) go
 * back to their source ranks, which get `<float32>[sum(countsE), M]` in their
 * original (expert-sorted) order. Counts are known from `plan`: one allToAllV.
 */
export async function exchangeTokensFromExperts(
  ep: Communicator,
  expertOutputTM: Float32Array,
  plan: DroplessPlan,
): Promise<Float32Array> {
  const p = ep.size;
  const el = plan.experts / p;
  const m = plan.dModel;
  let rows = 0;
  for (const c of plan.countsLR) rows += c;
  if (!(expertOutputTM instanceof Float32Array) || expertOutputTM.length !== rows * m) {
    throw new ParallelError(
      "INVALID_ARGUMENT",
      `exchangeTokensFromExperts: expertOutputTM must be a Float32Array of ${rows}*${m} = ${rows * m} elements ` +
        `(the rows exchangeTokensToExperts delivered), got ${expertOutputTM instanceof Float32Array ? expertOutputTM.length : String(expertOutputTM)}`,
    );
  }
  // Expert-major [l][r][rows] -> rank-major [r][l][rows].
  const startLR = new Int32Array(el * p);
  let off = 0;
  for (let i = 0; i < el * p; i++) {
    startLR[i] = off;
    off += plan.countsLR[i]!;
  }
  const sendRL = new Float32Array(expertOutputTM.length);
  let at = 0;
  const sendCounts: number[] = [];
  for (let r = 0; r < p; r++) {
    let n = 0;
    for (let l = 0; l < el; l++) {
      const len = plan.countsLR[l * p + r]! * m;
      const from = startLR[l * p + r]! * m;
      sendRL.set(expertOutputTM.subarray(from, from + len), at);
      at += len;
      n += len;
    }
    sendCounts.push(n);
  }
  const recvCounts = rowsPerRank(plan.countsE, p, el).map((r) => r * m);
  const { data } = await ep.allToAllV(sendRL, { sendCounts, recvCounts });
  return data;
}
