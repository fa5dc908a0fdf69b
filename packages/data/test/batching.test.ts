import { mkdtempSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { describe, expect, it } from "vitest";
import { planEpoch } from "../src/batching/plan.js";
import {
  type Batch,
  batchDigest,
  createBatchIterator,
  encodeSource,
  loadTrainingData,
  openCorpus,
  parseLoaderConfig,
  readPairTokens,
  saveTokenizer,
  taskSpaceOf,
  trainingDataFromPairs,
  trainTokenizer,
  WordCounter,
  writePairTokens,
} from "../src/index.js";
import { SYLLABLES, syntheticSentences } from "./fixtures/text.js";

// Three target languages of different sizes (so temperature sampling matters).
const sizes = { fr: 400, ru: 120, ja: 40 } as const;
const byLang = new Map<string, Array<[string, string]>>();
const counter = new WordCounter();
for (const [i, [lang, n]] of Object.entries(sizes).entries()) {
  const en = syntheticSentences(10 + i, n, SYLLABLES.en);
  const xx = syntheticSentences(20 + i, n, SYLLABLES[lang as keyof typeof SYLLABLES]);
  byLang.set(
    lang,
    en.map((e, k) => [e, xx[k]!]),
  );
  for (let k = 0; k < n; k++) {
    counter.add(en[k]!);
    counter.add(xx[k]!);
  }
}
const tok = trainTokenizer(counter, { vocabSize: 700, languages: ["en", "fr", "ru", "ja"] });
const data = trainingDataFromPairs(tok, byLang);
const config = parseLoaderConfig({
  maxTokens: 400,
  maxSourceLength: 40,
  maxTargetLength: 40,
  sortWindow: 64,
  seed: 3,
});

const take = (it: { nextBatch(): Batch }, n: number) => Array.from({ length: n }, () => it.nextBatch());
const key = (b: Batch, i: number) => `${b.streamIds[i]}:${b.exampleIndices[i]}`;

describe("task space", () => {
  it("numbers languages, pairs and task types", () => {
    expect(taskSpaceOf(["en", "fr", "ru"])).toEqual({
      languages: ["en", "fr", "ru"],
      pairs: ["en-fr", "fr-en", "en-ru", "ru-en", "en-en", "fr-fr", "ru-ru"],
      taskTypes: ["translate", "denoise"],
    });
    expect(() => taskSpaceOf(["fr", "en"])).toThrow(/must start with 'en'/);
  });
});

describe("batch iterator", () => {
  it("builds examples as documented: <2xx> src </s>; <s> tgt; tgt </s>; masks, lengths, task ids", () => {
    const it = createBatchIterator(data, config);
    const space = it.taskSpace;
    for (const b of take(it, 20)) {
      const { size: B, srcLen: S, tgtLen: T } = b;
      expect(b.srcIds.length).toBe(B * S);
      let src = 0;
      let tgt = 0;
      for (let i = 0; i < B; i++) {
        const pair = space.pairs[b.pairIds[i]!]!;
        const [sl, tl] = pair.split("-") as [string, string];
        const row = Array.from(b.srcIds.subarray(i * S, i * S + b.srcLengths[i]!));
        expect(row[0]).toBe(tok.langTag(tl));
        expect(row[row.length - 1]).toBe(tok.eosId);
        expect(
          Array.from(b.srcIds.subarray(i * S + b.srcLengths[i]!, (i + 1) * S)).every((x) => x === tok.padId),
        ).toBe(true);
        const L = b.tgtLengths[i]!;
        const tin = Array.from(b.tgtInIds.subarray(i * T, i * T + L));
        const tout = Array.from(b.tgtOutIds.subarray(i * T, i * T + L));
        expect(tin[0]).toBe(tok.bosId);
        expect(tout[L - 1]).toBe(tok.eosId);
        expect(tin.slice(1)).toEqual(tout.slice(0, -1));
        expect(Array.from(b.tgtMask.subarray(i * T, (i + 1) * T)).reduce((a, x) => a + x, 0)).toBe(L);
        expect(Array.from(b.srcMask.subarray(i * S, (i + 1) * S)).reduce((a, x) => a + x, 0)).toBe(
          b.srcLengths[i],
        );
        expect(space.languages[b.targetLangIds[i]!]).toBe(tl);
        expect(space.taskTypes[b.taskTypeIds[i]!]).toBe(sl === tl ? "denoise" : "translate");
        // translation targets decode to the corpus text of the other side
        if (sl !== tl) {
          const rows = byLang.get(sl === "en" ? tl : sl)!;
          const text = tok.decode(tout.slice(0, -1));
          expect(rows.some(([e, x]) => (tl === "en" ? e : x) === text)).toBe(true);
        } else {
          expect(row.length).toBeLessThanOrEqual(L + 1); // noise never lengthens
        }
        src += b.srcLengths[i]!;
        tgt += L;
      }
      expect(b.srcTokens).toBe(src);
      expect(b.tgtTokens).toBe(tgt);
      expect(Object.values(b.pairs).reduce((a, x) => a + x, 0)).toBe(B);
    }
  });

  it("encodeSource builds inference inputs exactly like training sources", () => {
    const it = createBatchIterator(data, { ...config, taskMix: { translate: 1, denoise: 0 } });
    const b = it.nextBatch();
    const pair = it.taskSpace.pairs[b.pairIds[0]!]!;
    const [sl, tl] = pair.split("-") as [string, string];
    const rows = byLang.get(sl === "en" ? tl : sl)!;
    const srcText = tok.decode(Array.from(b.srcIds.subarray(1, b.srcLengths[0]! - 1)));
    expect(rows.some(([e, x]) => (sl === "en" ? e : x) === srcText)).toBe(true);
    expect(Array.from(encodeSource(tok, srcText, tl, config.maxSourceLength))).toEqual(
      Array.from(b.srcIds.subarray(0, b.srcLengths[0]!)),
    );
    expect(Array.from(encodeSource(tok, "le la ez ou ait ion", "fr", 4))).toEqual([
      tok.langTag("fr"),
      ...Array.from(tok.encode("le la ez ou ait ion")).slice(0, 2),
      tok.eosId,
    ]);
  });

  it("respects the token budget: size × (S + T) ≤ maxTokens in every batch", () => {
    const it = createBatchIterator(data, config);
    const n = it.batchesPerEpoch * 2 + 3;
    let examples = 0;
    for (const b of take(it, n)) {
      expect(b.size * (b.srcLen + b.tgtLen)).toBeLessThanOrEqual(config.maxTokens);
      expect(b.srcLen).toBeLessThanOrEqual(config.maxSourceLength);
      expect(b.tgtLen).toBeLessThanOrEqual(config.maxTargetLength);
      examples += b.size;
    }
    expect(examples).toBeGreaterThan(it.examplesPerEpoch * 2);
    expect(() => createBatchIterator(data, { ...config, maxTokens: 50 })).toThrow(
      /maxTokens \(50\) is below maxSourceLength \+ maxTargetLength/,
    );
  });

  it("samples streams with the temperature formula: per-epoch counts equal the quotas", () => {
    const it = createBatchIterator(data, config);
    const info = it.streamInfo();
    const translate = info.filter((s) => s.task === "translate");
    const w = translate.map((s) => s.examples ** (1 / 5));
    const sum = w.reduce((a, x) => a + x, 0);
    translate.forEach((s, i) => {
      expect(s.probability).toBeCloseTo((0.8 * w[i]!) / sum, 12);
    });
    expect(info.reduce((a, s) => a + s.probability, 0)).toBeCloseTo(1, 12);
    const counts = new Map<string, number>();
    for (const b of take(it, it.batchesPerEpoch)) {
      expect(b.epoch).toBe(0);
      for (let i = 0; i < b.size; i++) {
        const p = it.taskSpace.pairs[b.pairIds[i]!]!;
        counts.set(p, (counts.get(p) ?? 0) + 1);
      }
    }
    for (const s of info) expect(counts.get(s.pair) ?? 0, s.pair).toBe(s.quota);
    // small languages are up-sampled relative to their share of the data
    const ja = info.find((s) => s.pair === "en-ja")!;
    expect(ja.quota / it.examplesPerEpoch).toBeGreaterThan((40 / 560) * 0.8);
  });

  it("is deterministic for a seed and differs for another seed", () => {
    const a = take(createBatchIterator(data, config), 10).map(batchDigest);
    expect(take(createBatchIterator(data, config), 10).map(batchDigest)).toEqual(a);
    expect(take(createBatchIterator(data, { ...config, seed: 4 }), 10).map(batchDigest)).not.toEqual(a);
  });

  it("shards by rank: disjoint, complete, equal batch counts (world size 3)", () => {
    const W = 3;
    const ranks = Array.from({ length: W }, (_, r) =>
      createBatchIterator(data, config, { rank: r, worldSize: W }),
    );
    const per = ranks.map((it) => it.batchesPerEpoch);
    expect(new Set(per).size).toBe(1);
    const seen = new Map<string, number>();
    for (const it of ranks) {
      for (const b of take(it, per[0]!)) {
        expect(b.epoch).toBe(0);
        for (let i = 0; i < b.size; i++) {
          const k = `${key(b, i)}`;
          seen.set(k, (seen.get(k) ?? 0) + 1);
        }
      }
    }
    // The epoch plan (what one process would iterate) holds exactly the same draws.
    const it0 = ranks[0]!;
    const streams = (it0 as unknown as { streams: Parameters<typeof planEpoch>[0] }).streams;
    const quotas = (it0 as unknown as { quotas: Int32Array }).quotas;
    const plan = planEpoch(streams, quotas, 0, { ...config }, W);
    const expected = new Map<string, number>();
    for (let s = 0; s < plan.stream.length; s++) {
      const k = `${plan.stream[s]}:${plan.example[s]}`;
      expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    expect(seen).toEqual(expected);
    let total = 0;
    for (const v of seen.values()) total += v;
    expect(total).toBe(it0.examplesPerEpoch);
    // disjoint: each draw slot appears in exactly one rank's batches
    const slots = plan.batches.flatMap((b) => Array.from(b));
    expect(new Set(slots).size).toBe(slots.length);
    expect(slots.length).toBe(it0.examplesPerEpoch);
  });

  it("resumes exactly: the batches after restore(state) are the uninterrupted ones, across epochs", () => {
    const ref = createBatchIterator(data, config, { rank: 1, worldSize: 2 });
    const per = ref.batchesPerEpoch;
    const stop = per - 2; // stop near the end of epoch 0 so the resumed run crosses into epoch 1
    take(ref, stop);
    const saved = JSON.parse(JSON.stringify(ref.state()));
    const after = take(ref, 6);
    expect(after.some((b) => b.epoch === 1)).toBe(true);
    const resumed = createBatchIterator(data, config, { rank: 1, worldSize: 2 });
    resumed.restore(saved);
    const again = take(resumed, 6);
    expect(again.map(batchDigest)).toEqual(after.map(batchDigest));
    expect(again.map((b) => b.step)).toEqual(after.map((b) => b.step));
    expect(again[0]!.step).toBe(stop);
  });

  it("refuses a state from another config, data, rank or world size, saying what differs", () => {
    const state = createBatchIterator(data, config).state();
    expect(() => createBatchIterator(data, { ...config, maxTokens: 500 }).restore(state)).toThrow(
      /loader\.maxTokens \(state 400, here 500\)/,
    );
    expect(() => createBatchIterator(data, config, { rank: 0, worldSize: 2 }).restore(state)).toThrow(
      /state rank 0 of 1, here rank 0 of 2/,
    );
    const other = trainingDataFromPairs(
      tok,
      new Map([
        ["fr", byLang.get("fr")!.slice(1)],
        ["ru", byLang.get("ru")!],
        ["ja", byLang.get("ja")!],
      ]),
    );
    expect(() => createBatchIterator(other, config).restore(state)).toThrow(/training data/);
    expect(() => createBatchIterator(data, config, { rank: 2, worldSize: 2 })).toThrow(
      /rank must be an integer in \[0, 2\)/,
    );
  });
});

describe("directed pairs (one translation direction reads its own pairs)", () => {
  // en→fr reads pairs whose French side is the real French reversed word by word;
  // fr→en and denoising keep reading the symmetric pairs.
  const fr = data.pairs.get("fr")!;
  const n = 50;
  const enIds: number[] = [];
  const xxIds: number[] = [];
  const enOff = [0];
  const xxOff = [0];
  for (let i = 0; i < n; i++) {
    enIds.push(...fr.enIds.subarray(fr.enOffsets[i]!, fr.enOffsets[i + 1]!));
    xxIds.push(...Array.from(fr.xxIds.subarray(fr.xxOffsets[i]!, fr.xxOffsets[i + 1]!)).reverse());
    enOff.push(enIds.length);
    xxOff.push(xxIds.length);
  }
  const directedFr = {
    n,
    enOffsets: Uint32Array.from(enOff),
    enIds: Uint16Array.from(enIds),
    xxOffsets: Uint32Array.from(xxOff),
    xxIds: Uint16Array.from(xxIds),
  };
  const withDirected = { ...data, directed: new Map([["en-fr", directedFr]]), fingerprint: "directed" };

  it("replaces the stream's examples for that direction only", () => {
    const it = createBatchIterator(withDirected, config);
    const info = it.streamInfo();
    expect(info.find((s) => s.pair === "en-fr" && s.task === "translate")!.examples).toBe(n);
    expect(info.find((s) => s.pair === "fr-en")!.examples).toBe(sizes.fr);
    expect(info.find((s) => s.pair === "fr-fr")!.examples).toBe(sizes.fr);
    const space = it.taskSpace;
    let checked = 0;
    for (const b of take(it, 40)) {
      for (let r = 0; r < b.size; r++) {
        const pair = space.pairs[b.pairIds[r]!];
        const ex = b.exampleIndices[r]!;
        const tgt = Array.from(b.tgtOutIds.subarray(r * b.tgtLen, r * b.tgtLen + b.tgtLengths[r]! - 1));
        if (pair === "en-fr") {
          expect(tgt).toEqual(Array.from(directedFr.xxIds.subarray(xxOff[ex]!, xxOff[ex + 1]!)));
          checked++;
        } else if (pair === "fr-en") {
          expect(tgt).toEqual(Array.from(fr.enIds.subarray(fr.enOffsets[ex]!, fr.enOffsets[ex + 1]!)));
        }
      }
    }
    expect(checked).toBeGreaterThan(0);
  });

  it("round-trips through a corpus directory (manifest directedTokens, writePairTokens/readPairTokens)", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "polymoe-directed-"));
    await saveTokenizer(tok, path.join(dir, "tokenizer.json"));
    const tokens: Record<string, { file: string; pairs: number; enTokens: number; xxTokens: number }> = {};
    for (const [lang, p] of data.pairs) {
      await writePairTokens(path.join(dir, `tokens/en-${lang}.bin`), p, tok.vocabSize);
      tokens[`en-${lang}`] = {
        file: `tokens/en-${lang}.bin`,
        pairs: p.n,
        enTokens: p.enIds.length,
        xxTokens: p.xxIds.length,
      };
    }
    await writePairTokens(path.join(dir, "tokens/directed/en-fr.bin"), directedFr, tok.vocabSize);
    const manifest = {
      format: "polymoe-corpus",
      version: 1,
      languages: data.languages,
      splits: {},
      tokenizer: { file: "tokenizer.json", vocabSize: tok.vocabSize },
      tokens,
      directedTokens: {
        "en-fr": {
          file: "tokens/directed/en-fr.bin",
          pairs: n,
          enTokens: enIds.length,
          xxTokens: xxIds.length,
        },
      },
      fingerprint: "fp",
    };
    await writeFile(path.join(dir, "manifest.json"), JSON.stringify(manifest));
    const loaded = await loadTrainingData(await openCorpus(dir));
    const back = loaded.directed!.get("en-fr")!;
    expect(Array.from(back.xxIds)).toEqual(xxIds);
    expect(Array.from(back.enOffsets)).toEqual(enOff);
    expect((await readPairTokens(path.join(dir, "tokens/en-ru.bin"), tok.vocabSize)).n).toBe(sizes.ru);
    // A direction naming a language the corpus does not have is refused.
    await writeFile(
      path.join(dir, "manifest.json"),
      JSON.stringify({ ...manifest, directedTokens: { "en-de": manifest.directedTokens["en-fr"] } }),
    );
    await expect(loadTrainingData(await openCorpus(dir))).rejects.toThrow(
      /directedTokens has 'en-de'; expected en-xx or xx-en with xx one of fr, ru, ja/,
    );
    await expect(
      writePairTokens(path.join(dir, "bad.bin"), { ...directedFr, n: n + 1 }, tok.vocabSize),
    ).rejects.toThrow(/51 pairs need 52 offsets per side, got 51 and 51/);
  });
});
