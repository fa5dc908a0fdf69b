// Binary store of a tokenized language pair (`tokens/en-xx.bin`): the training loop
// loads it in one read, with no text processing at start-up.
//
// Layout (little endian):
//   0  "PMTK"        magic
//   4  u32 version   (1)
//   8  u32 n         pairs
//  12  u32 idBytes   2 (vocab ≤ 65536) or 4
//  16  u32 vocabSize
//  20  u32 enTotal   English tokens
//  24  u32 xxTotal   target tokens
//  28  u32 reserved
//  32  u32 enOffsets[n + 1], u32 xxOffsets[n + 1], enIds[enTotal], xxIds[xxTotal]
import { promises as fsp } from "node:fs";

import { DataError } from "../errors.js";
import { writeFileAtomic } from "../util/fs.js";

/** The token ids of one English↔xx pair set; pair i's English ids are `enIds[enOffsets[i]..enOffsets[i+1])`. */
export interface PairTokens {
  n: number;
  enOffsets: Uint32Array;
  enIds: Uint16Array | Uint32Array;
  xxOffsets: Uint32Array;
  xxIds: Uint16Array | Uint32Array;
}

/** Accumulates pairs in memory then writes one file. */
export class PairTokensBuilder {
  private en: number[] = [];
  private xx: number[] = [];
  private enOff: number[] = [0];
  private xxOff: number[] = [0];

  add(en: ArrayLike<number>, xx: ArrayLike<number>): void {
    for (let i = 0; i < en.length; i++) this.en.push(en[i]!);
    for (let i = 0; i < xx.length; i++) this.xx.push(xx[i]!);
    this.enOff.push(this.en.length);
    this.xxOff.push(this.xx.length);
  }

  get size(): number {
    return this.enOff.length - 1;
  }

  get tokens(): { en: number; xx: number } {
    return { en: this.en.length, xx: this.xx.length };
  }

  async write(file: string, vocabSize: number): Promise<void> {
    const Ids = vocabSize <= 65536 ? Uint16Array : Uint32Array;
    await writePairTokens(
      file,
      {
        n: this.size,
        enOffsets: Uint32Array.from(this.enOff),
        enIds: Ids.from(this.en),
        xxOffsets: Uint32Array.from(this.xxOff),
        xxIds: Ids.from(this.xx),
      },
      vocabSize,
    );
  }
}

/** Writes pair tokens as a token file (atomically); ids must be below `vocabSize`. */
export async function writePairTokens(file: string, tokens: PairTokens, vocabSize: number): Promise<void> {
  const { n, enOffsets, xxOffsets, enIds, xxIds } = tokens;
  if (enOffsets.length !== n + 1 || xxOffsets.length !== n + 1) {
    throw new DataError(
      "INVALID_ARGUMENT",
      `writePairTokens: ${n} pairs need ${n + 1} offsets per side, got ${enOffsets.length} and ${xxOffsets.length}`,
    );
  }
  if (enOffsets[n] !== enIds.length || xxOffsets[n] !== xxIds.length) {
    throw new DataError(
      "INVALID_ARGUMENT",
      `writePairTokens: the last offsets (${enOffsets[n]}, ${xxOffsets[n]}) must equal the id counts (${enIds.length}, ${xxIds.length})`,
    );
  }
  for (const ids of [enIds, xxIds]) {
    for (let i = 0; i < ids.length; i++) {
      if (ids[i]! >= vocabSize) {
        throw new DataError(
          "INVALID_ARGUMENT",
          `writePairTokens: id ${ids[i]} at ${i} is outside the vocabulary [0, ${vocabSize})`,
        );
      }
    }
  }
  const idBytes = vocabSize <= 65536 ? 2 : 4;
  const buf = new Uint8Array(32 + 8 * (n + 1) + idBytes * (enIds.length + xxIds.length));
  const dv = new DataView(buf.buffer);
  buf.set([0x50, 0x4d, 0x54, 0x4b]);
  dv.setUint32(4, 1, true);
  dv.setUint32(8, n, true);
  dv.setUint32(12, idBytes, true);
  dv.setUint32(16, vocabSize, true);
  dv.setUint32(20, enIds.length, true);
  dv.setUint32(24, xxIds.length, true);
  let off = 32;
  new Uint32Array(buf.buffer, off, n + 1).set(enOffsets);
  off += 4 * (n + 1);
  new Uint32Array(buf.buffer, off, n + 1).set(xxOffsets);
  off += 4 * (n + 1);
  const Ids = idBytes === 2 ? Uint16Array : Uint32Array;
  new Ids(buf.buffer, off, enIds.length).set(enIds);
  off += idBytes * enIds.length;
  new Ids(buf.buffer, off, xxIds.length).set(xxIds);
  await writeFileAtomic(file, buf);
}

/** Reads a token file; BAD_CORPUS names the file and what is wrong. */
export async function readPairTokens(file: string, vocabSize: number): Promise<PairTokens> {
  let raw: Buffer;
  try {
    raw = await fsp.readFile(file);
  } catch {
    throw new DataError("BAD_CORPUS", `${file}: missing token file; re-run 'polymoe data prepare'`);
  }
  const buf = new Uint8Array(raw.length);
  buf.set(raw); // aligned copy
  const dv = new DataView(buf.buffer);
  if (buf.length < 32 || dv.getUint32(0, false) !== 0x504d544b) {
    throw new DataError("BAD_CORPUS", `${file}: not a PolyMoE token file (bad magic)`);
  }
  const n = dv.getUint32(8, true);
  const idBytes = dv.getUint32(12, true);
  const vs = dv.getUint32(16, true);
  const enTotal = dv.getUint32(20, true);
  const xxTotal = dv.getUint32(24, true);
  if (vs !== vocabSize) {
    throw new DataError(
      "BAD_CORPUS",
      `${file}: tokenized with vocabulary size ${vs}, the tokenizer has ${vocabSize}; re-run prepare`,
    );
  }
  const expect = 32 + 8 * (n + 1) + idBytes * (enTotal + xxTotal);
  if (buf.length !== expect || (idBytes !== 2 && idBytes !== 4)) {
    throw new DataError(
      "BAD_CORPUS",
      `${file}: ${buf.length} bytes, header implies ${expect}: truncated or corrupt; re-run prepare`,
    );
  }
  let off = 32;
  const enOffsets = new Uint32Array(buf.buffer, off, n + 1);
  off += 4 * (n + 1);
  const xxOffsets = new Uint32Array(buf.buffer, off, n + 1);
  off += 4 * (n + 1);
  const Ids = idBytes === 2 ? Uint16Array : Uint32Array;
  const enIds = new Ids(buf.buffer, off, enTotal);
  off += idBytes * enTotal;
  const xxIds = new Ids(buf.buffer, off, xxTotal);
  return { n, enOffsets, enIds, xxOffsets, xxIds };
}
