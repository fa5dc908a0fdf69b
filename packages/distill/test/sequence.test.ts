import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";

import {
  createBatchIterator,
  loadTrainingData,
  openCorpus,
  parseLoaderConfig,
  type Tokenizer,
  taskSpaceOf,
} from "@polymoe/data";
import { translate } from "@polymoe/eval";
import type { ModelConfigInput, Transformer } from "@polymoe/model";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";

import {
  DistillError,
  generateSequenceKdCorpus,
  loadTeacher,
  readTeacherInfo,
  type SequenceKdOptions,
  selectPairs,
} from "../src/index.js";
import { makeCorpus, makeTeacher, tempDir } from "./fixture.js";
import { env } from "./helpers.js";

const bytes = (f: string) => readFileSync(f);
/** Every file the distilled corpus adds (teacher outputs as tokens and text). */
function outputs(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const sub of ["tokens/directed", "seqkd"]) {
    for (const f of readdirSync(path.join(dir, sub)).sort())
      out.set(`${sub}/${f}`, bytes(path.join(dir, sub, f)));
  }
  return out;
}

describe(`sequence-level distillation (on ${env.backends.at(-1)})`, () => {
  let corpus: Awaited<ReturnType<typeof makeCorpus>>["corpus"];
  let tokenizer: Tokenizer;
  let teacher: Transformer;
  let teacherDir: string;
  const info = () => ({ dir: teacherDir, digest: "digest-1" });
  let opts: () => SequenceKdOptions;

  beforeAll(async () => {
    ({ corpus, tokenizer } = await makeCorpus(10));
    // A token-routed teacher with a capacity limit at evaluation: batch composition matters to it.
    const config: ModelConfigInput = {
      vocabSize: tokenizer.vocabSize,
      dModel: 16,
      heads: 2,
      dFF: 24,
      encoderLayers: 1,
      decoderLayers: 2,
      maxLength: 24,
      dropout: 0,
      moe: { decoder: { numExperts: 4, dFF: 12, router: { type: "topk", k: 2, evalCapacityFactor: 1 } } },
    };
    ({ model: teacher, dir: teacherDir } = makeTeacher(config, {
      taskSpace: taskSpaceOf(["en", "de", "fr"]),
    }));
    opts = () => ({
      teacher,
      teacherInfo: info(),
      corpus,
      out: tempDir(),
      beamSize: 2,
      batchSize: 3,
      maxSourceLength: 12,
      maxLenRatio: 1,
      maxLenOffset: 3,
      maxPairsPerLanguage: 6,
      seed: 1,
      chunkSize: 4,
    });
  });

  it("selects a seeded sample of pairs (all of them when there are few enough)", () => {
    expect(Array.from(selectPairs(5, 0, 1, "de"))).toEqual([0, 1, 2, 3, 4]);
    expect(Array.from(selectPairs(5, 9, 1, "de"))).toEqual([0, 1, 2, 3, 4]);
    const a = selectPairs(100, 10, 1, "de");
    expect(a.length).toBe(10);
    expect(Array.from(a)).toEqual(Array.from(a).sort((x, y) => x - y));
    expect(new Set(a).size).toBe(10);
    expect(Array.from(selectPairs(100, 10, 1, "de"))).toEqual(Array.from(a));
    expect(Array.from(selectPairs(100, 10, 2, "de"))).not.toEqual(Array.from(a));
    expect(Array.from(selectPairs(100, 10, 1, "fr"))).not.toEqual(Array.from(a));
  });

  it("is deterministic for a seed: two runs write the same bytes; another seed another sample", async () => {
    const before = tf.memory().numTensors;
    const a = await generateSequenceKdCorpus(opts());
    const b = await generateSequenceKdCorpus(opts());
    expect(tf.memory().numTensors).toBe(before);
    expect(a.decoded).toBe(2 * 2 * 6); // 2 languages x 2 directions x 6 sampled pairs
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(outputs(b.dir)).toEqual(outputs(a.dir));
    expect(existsSync(path.join(a.dir, "work"))).toBe(false);
    const c = await generateSequenceKdCorpus({ ...opts(), seed: 2 });
    expect(c.fingerprint).not.toBe(a.fingerprint);
    expect(outputs(c.dir).get("seqkd/en-de.tsv")).not.toEqual(outputs(a.dir).get("seqkd/en-de.tsv"));
  });

  it("resumes an interrupted run at the first missing chunk and ends with the same bytes", async () => {
    const whole = await generateSequenceKdCorpus(opts());
    const o = opts();
    let stopAt = 3;
    await expect(
      generateSequenceKdCorpus({
        ...o,
        onChunk: (done) => {
          if (done === stopAt) throw new Error("killed");
        },
      }),
    ).rejects.toThrow("killed");
    expect(readdirSync(path.join(o.out, "work")).filter((f) => f.endsWith(".bin"))).toHaveLength(3);
    stopAt = -1;
    let loads = 0;
    const resumed = await generateSequenceKdCorpus({
      ...o,
      teacher: () => {
        loads++;
        return loadTeacher(readTeacherInfo(teacherDir)); // owned (and disposed) by the generator
      },
    });
    expect(loads).toBe(1);
    expect(resumed.resumedChunks).toBe(3);
    expect(resumed.decoded).toBe(24 - 4 - 4 - 2); // chunks of 4, 4, 2 sentences were done
    expect(outputs(o.out)).toEqual(outputs(whole.dir));
    // Finished: a rerun reuses it without loading the teacher; other settings are refused.
    const again = await generateSequenceKdCorpus({
      ...o,
      teacher: () => {
        throw new Error("not needed");
      },
    });
    expect(again.reused).toBe(true);
    await expect(generateSequenceKdCorpus({ ...o, beamSize: 3 })).rejects.toThrow(
      /holds a distilled corpus made with beamSize 2 \(now 3\); use another output directory/,
    );
  });

  it("writes a corpus the trainer reads: translation targets are the teacher's beam outputs, as translate() gives them", async () => {
    const o = { ...opts(), maxPairsPerLanguage: 0, chunkSize: 100, batchSize: 4 };
    const r = await generateSequenceKdCorpus(o);
    expect(r.directions["en-de"]).toMatchObject({ pairs: 10 });
    const distilled = await openCorpus(r.dir);
    expect(distilled.manifest.directedTokens).toBeDefined();
    expect(distilled.manifest.warnings.at(-1)).toMatch(
      /sequence-level distillation .* beam-2 outputs of the teacher/,
    );
    const data = await loadTrainingData(distilled);
    const base = await loadTrainingData(corpus);
    // The teacher's English for de→en, decoded from the corpus, equals translate() on the German text.
    const tsv = readFileSync(path.join(r.dir, "seqkd", "de-en.tsv"), "utf8")
      .trim()
      .split("\n");
    const german = tsv.map((l) => l.split("\t")[0] as string);
    const viaTranslate = translate(teacher, tokenizer, taskSpaceOf(["en", "de", "fr"]), german, "de", "en", {
      beamSize: 2,
      batchSize: 4,
      maxSourceLength: 12,
      maxLenRatio: 1,
      maxLenOffset: 3,
    });
    expect(tsv.map((l) => l.split("\t")[1])).toEqual(viaTranslate);
    // Batches: en→de targets come from the teacher, denoising from the real sentences.
    const it = createBatchIterator(
      data,
      parseLoaderConfig({ maxTokens: 200, maxSourceLength: 12, maxTargetLength: 40 }),
    );
    const space = it.taskSpace;
    const directed = data.directed!.get("en-de")!;
    const deBase = base.pairs.get("de")!;
    let seen = 0;
    for (let n = 0; n < 30; n++) {
      const b = it.nextBatch();
      for (let row = 0; row < b.size; row++) {
        const pair = space.pairs[b.pairIds[row]!];
        const ex = b.exampleIndices[row]!;
        const tgt = Array.from(b.tgtOutIds.subarray(row * b.tgtLen, row * b.tgtLen + b.tgtLengths[row]! - 1));
        if (pair === "en-de") {
          expect(tgt).toEqual(
            Array.from(directed.xxIds.subarray(directed.xxOffsets[ex]!, directed.xxOffsets[ex + 1]!)),
          );
          seen++;
        } else if (pair === "de-de") {
          expect(tgt).toEqual(
            Array.from(deBase.xxIds.subarray(deBase.xxOffsets[ex]!, deBase.xxOffsets[ex + 1]!)),
          );
        }
      }
    }
    expect(seen).toBeGreaterThan(0);
    // The base corpus's evaluation splits came along.
    expect(readFileSync(path.join(r.dir, "dev-en-de.tsv"), "utf8")).toBe(
      readFileSync(path.join(corpus.dir, "dev-en-de.tsv"), "utf8"),
    );
  });

  it("refuses bad settings with one clear line", async () => {
    await expect(generateSequenceKdCorpus({ ...opts(), beamSize: 0 })).rejects.toThrow(
      /beamSize must be an integer >= 1, got 0/,
    );
    await expect(generateSequenceKdCorpus({ ...opts(), out: corpus.dir })).rejects.toThrow(
      /cannot be written over its base corpus/,
    );
    await expect(generateSequenceKdCorpus({ ...opts(), out: corpus.dir })).rejects.toBeInstanceOf(
      DistillError,
    );
  });
});
