import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const polymoe = (args: string[]) =>
  spawnSync(
    process.execPath,
    ["--conditions=@polymoe/source", "--import", "tsx", "apps/cli/src/bin.ts", ...args],
    { cwd: root, encoding: "utf8", env: { ...process.env, POLYMOE_NUM_THREADS: "1", CI: "1" } },
  );

describe("polymoe train with a distill section (offline UDHR corpus, tiny TokenMoE teacher)", () => {
  it("trains a teacher, distils it word-level (cached top-k) and sequence-level, and refuses bad teachers", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "polymoe-distill-e2e-"));
    const corpus = path.join(dir, "corpus");
    const prep = polymoe(
      ["data", "prepare", "--preset", "quick", "--no-debian", "--udhr", "train"].concat([
        "--vocab-size",
        "1000",
        "--out",
        corpus,
      ]),
    );
    expect(prep.status, prep.stderr).toBe(0);
    const common = {
      data: { corpus, loader: { maxTokens: 384, maxSourceLength: 24, maxTargetLength: 24 } },
      train: {
        maxSteps: 3,
        logEvery: 1,
        evalEvery: 0,
        saveEvery: 0,
        optimizer: { lr: 0.001, schedule: { type: "constant", warmupSteps: 1 } },
      },
      dev: { lossSentencesPerPair: 2, bleuSentencesPerPair: 0 },
    };
    const write = (name: string, config: unknown) => {
      const file = path.join(dir, `${name}.json`);
      writeFileSync(file, JSON.stringify(config));
      return file;
    };
    const teacherDir = path.join(dir, "teacher");
    const teacher = polymoe([
      "train",
      "--config",
      write("teacher", {
        ...common,
        model: {
          dModel: 32,
          heads: 2,
          dFF: 48,
          encoderLayers: 1,
          decoderLayers: 2,
          maxLength: 40,
          moe: { decoder: { numExperts: 4, dFF: 16, router: { type: "topk", k: 2 } } },
        },
        run: { dir: teacherDir },
      }),
    ]);
    expect(teacher.status, teacher.stderr + teacher.stdout).toBe(0);

    // Word-level KD with a top-k cache; the student is sized like the extracted subnetwork.
    const cacheDir = path.join(dir, "cache");
    const word = write("word", {
      ...common,
      distill: {
        mode: "word",
        teacher: teacherDir,
        alpha: 0.5,
        temperature: 2,
        initFromTeacher: true,
        cache: { dir: cacheDir, topK: 4 },
      },
      run: { dir: path.join(dir, "word") },
    });
    const first = polymoe(["train", "--config", word]);
    expect(first.status, first.stderr + first.stdout).toBe(0);
    expect(first.stdout).toMatch(
      /distill: word-level, teacher .*teacher\/checkpoints\/checkpoint_best \(step 3; 1\+2 layers, d=32, decoder 4 experts \(topk, k 2\)\)/,
    );
    expect(first.stdout).toMatch(
      /student initialised from the teacher's non-expert weights: \d+ tensors copied, 4 kept/,
    );
    expect(first.stdout).toMatch(
      /distill: loss = 0.5 \* T\^2 \* KL \+ 0.5 \* label-smoothed CE, T = 2; teacher top-4 log-probs cached/,
    );
    expect(first.stdout).toMatch(/teacher targets: 3 batches computed .*, 0 read from/);
    expect(first.stdout).toMatch(/done: 3 steps/);
    const resolved = JSON.parse(readFileSync(path.join(dir, "word", "config.json"), "utf8"));
    expect(resolved.model.moe).toBeUndefined();
    expect(resolved.model.ffnWidths).toEqual({ decoder: { "1": 32 } }); // k 2 x expert dFF 16
    expect(readdirSync(cacheDir).sort()).toEqual(["cache.json", "rank0-000000000.bin"]);
    // Starting over reads every record from the cache: the teacher is never loaded.
    const again = polymoe(["train", "--config", word, "--fresh"]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/teacher targets: 0 batches computed .*, 3 read from/);
    expect(again.stdout).not.toMatch(/teacher loaded/);

    // Sequence-level KD: a corpus of the teacher's beam outputs, then ordinary training on it.
    const seqCorpus = path.join(dir, "seqkd");
    const seq = polymoe([
      "train",
      "--config",
      write("seq", {
        ...common,
        train: { ...common.train, maxSteps: 2 },
        distill: {
          mode: "sequence",
          teacher: teacherDir,
          beamSize: 2,
          batchSize: 8,
          maxPairsPerLanguage: 3,
          corpus: seqCorpus,
        },
        run: { dir: path.join(dir, "seq") },
      }),
    ]);
    expect(seq.status, seq.stderr + seq.stdout).toBe(0);
    expect(seq.stdout).toMatch(/sequence-level corpus .*seqkd: \d+ teacher translations \(beam 2\)/);
    expect(existsSync(path.join(seqCorpus, "manifest.json"))).toBe(true);
    expect(seq.stdout).toMatch(/done: 2 steps/);

    // Bad input: one line each.
    const missing = polymoe(["train", "--config", word, "--distill.teacher", path.join(dir, "nope")]);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim()).toMatch(
      /^polymoe train: distill.teacher: .*nope is not a checkpoint .* train the teacher first/,
    );
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
    const other = path.join(dir, "other-teacher");
    cpSync(path.join(teacherDir, "checkpoints", "checkpoint_0_3"), other, { recursive: true });
    const state = JSON.parse(readFileSync(path.join(other, "state.json"), "utf8"));
    state.model.vocabSize = 999;
    writeFileSync(path.join(other, "state.json"), JSON.stringify(state));
    const vocab = polymoe(["train", "--config", word, "--distill.teacher", other, "--distill.alpha", "1.5"]);
    expect(vocab.status).toBe(2);
    expect(vocab.stderr).toMatch(/distill.alpha: .*<=1, got 1.5/);
    const vocab2 = polymoe(["train", "--config", word, "--distill.teacher", other]);
    expect(vocab2.status).toBe(1);
    expect(vocab2.stderr.trim()).toMatch(
      /^polymoe train: vocabulary mismatch: the teacher .* has 999 tokens, the student's corpus .* has \d+; distillation needs one tokenizer/,
    );
  }, 300_000);
});
