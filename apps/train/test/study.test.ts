import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "@polymoe/schema";
import { describe, expect, it } from "vitest";

import {
  activeFfnWidths,
  parseStudyConfig,
  readDone,
  readStudyConfig,
  runStudy,
  studentRunConfig,
  studyStages,
} from "../src/index.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

const base = (arch: { dense?: object; tokenmoe?: object; taskmoe?: object } = {}) => {
  const shared = { dModel: 32, heads: 2, dFF: 32, encoderLayers: 2, decoderLayers: 2, maxLength: 40 };
  return {
    dir: "unused",
    data: { corpus: "unused", loader: { maxTokens: 384, maxSourceLength: 24, maxTargetLength: 24 } },
    train: {
      maxSteps: 2,
      logEvery: 1,
      evalEvery: 0,
      saveEvery: 1,
      optimizer: { lr: 0.001, schedule: { type: "constant", warmupSteps: 1 } },
    },
    dev: { lossSentencesPerPair: 2, bleuSentencesPerPair: 0 },
    models: {
      dense: { ...shared, ...arch.dense },
      tokenmoe: {
        ...shared,
        moe: {
          encoder: { numExperts: 4, dFF: 16, router: { type: "topk", k: 2 } },
          decoder: { numExperts: 4, dFF: 16, router: { type: "topk", k: 2 } },
        },
        ...arch.tokenmoe,
      },
      taskmoe: {
        ...shared,
        moe: {
          encoder: { numExperts: 4, dFF: 16, router: { type: "task", k: 2 } },
          decoder: { numExperts: 4, dFF: 16, router: { type: "task", k: 2 } },
        },
        ...arch.taskmoe,
      },
    },
    distill: { config: { mode: "word", alpha: 0.5, cache: { topK: 4 } } },
    prune: { keep: [2], maxSentences: 2 },
    eval: { splits: [{ name: "test", maxSentences: 2 }], batchSize: 4 },
  };
};

const issues = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.join("\n");
    throw e;
  }
  throw new Error("no error");
};

describe("study config", () => {
  it("the shipped study configs parse: equal active FFN width per token, the student sized like a subnetwork", () => {
    for (const name of ["study-small", "study-base"]) {
      const { config } = readStudyConfig(name);
      const stages = studyStages(config).map((s) => s.name);
      expect(stages.slice(0, 7)).toEqual([
        "dense",
        "tokenmoe",
        "taskmoe",
        "student",
        "extract",
        "prune",
        "eval-dense",
      ]);
      expect(stages.at(-1)).toBe("report");
      const student = studentRunConfig(config);
      expect(student.distill?.teacher).toBe(path.join(config.dir, "tokenmoe"));
      expect(student.distill?.mode === "word" && student.distill.cache?.dir).toBe(
        path.join(config.dir, "student", "teacher-cache"),
      );
    }
    expect(
      activeFfnWidths({
        vocabSize: 10,
        dModel: 8,
        heads: 2,
        dFF: 64,
        encoderLayers: 2,
        decoderLayers: 1,
        moe: {
          encoder: {
            layers: "every-other",
            numExperts: 4,
            dFF: 16,
            router: { type: "topk", k: 2 },
            taskKey: "target-language",
            residual: false,
            expertBias: true,
          },
        },
      } as never),
    ).toEqual({ "encoder.0": 64, "encoder.1": 32, "decoder.0": 64 });
  });

  it("refuses unequal compute per token, a token-routed TaskMoE, a dense TokenMoE, unknown keys", () => {
    expect(issues(() => parseStudyConfig(base({ dense: { dFF: 48 } })))).toMatch(
      /models.tokenmoe: active FFN width per token at encoder.0 is 32, the dense model's 48; equal compute per token needs k x expert dFF = dense width/,
    );
    expect(() =>
      parseStudyConfig({ ...base({ dense: { dFF: 48 } }), allowUnequalCompute: true }),
    ).not.toThrow();
    const tokenRouted = base();
    (tokenRouted.models.taskmoe as { moe: { encoder: object } }).moe.encoder = {
      numExperts: 4,
      dFF: 16,
      router: { type: "topk", k: 2 },
    };
    expect(issues(() => parseStudyConfig(tokenRouted))).toMatch(
      /models.taskmoe.moe.encoder.router.type: 'topk'; every MoE layer of the TaskMoE must be task-routed/,
    );
    expect(issues(() => parseStudyConfig(base({ tokenmoe: { moe: undefined } })))).toMatch(
      /models.tokenmoe: no moe section; it must be an MoE model/,
    );
    expect(issues(() => parseStudyConfig({ ...base(), evals: {} }))).toMatch(/evals.*did you mean 'eval'/);
  });
});

describe("polymoe study end to end (offline UDHR corpus, tiny models)", () => {
  it("runs every stage, reuses them, reruns only what a config change touches; extracted = full TaskMoE", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "polymoe-study-e2e-"));
    const corpus = path.join(dir, "corpus");
    const prep = spawnSync(
      process.execPath,
      [
        "--conditions=@polymoe/source",
        "--import",
        "tsx",
        "apps/cli/src/bin.ts",
        "data",
        "prepare",
        "--preset",
        "quick",
        "--no-debian",
        "--udhr",
        "train",
        "--vocab-size",
        "1000",
        "--out",
        corpus,
      ],
      { cwd: root, encoding: "utf8", env: { ...process.env, POLYMOE_NUM_THREADS: "1", CI: "1" } },
    );
    expect(prep.status, prep.stderr).toBe(0);
    const raw = { ...base(), dir: path.join(dir, "study") };
    raw.data.corpus = corpus;
    const file = path.join(dir, "study.json");
    writeFileSync(file, JSON.stringify(raw));
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const study = readStudyConfig(file).config;
    const out = await runStudy(study, { log });
    const report = out.report as { file: string; plots: string[] };
    const md = readFileSync(report.file, "utf8");
    for (const label of [
      "Dense",
      "TokenMoE",
      "TaskMoE",
      "TaskMoE extracted",
      "Student (KD from TokenMoE)",
      "TokenMoE pruned to 2",
    ])
      expect(md).toContain(`| ${label} |`);
    expect(md).toMatch(
      /BLEU equal on (\d+) of \1 directions; identical hypotheses on (\d+) of \2 directions/,
    );
    for (const p of report.plots) expect(existsSync(path.join(path.dirname(report.file), p))).toBe(true);
    expect(report.plots).toEqual(
      expect.arrayContaining(["bleu-test-en-xx.svg", "loss-dev.svg", "usage-taskmoe-encoder.layers.1.svg"]),
    );
    const ex = out["eval-extracted"] as { parameters: number };
    const dense = out["eval-dense"] as { parameters: number };
    const student = out["eval-student"] as { parameters: number };
    expect(student.parameters).toBe(dense.parameters); // all three: the dense shape
    expect(ex.parameters).toBe(dense.parameters);

    // Again: every stage reused.
    lines.length = 0;
    await runStudy(study, { log });
    expect(lines.filter((l) => l.includes("reusing it"))).toHaveLength(studyStages(study).length);
    // A changed eval setting reruns the evaluations and the report only.
    const before = readDone(study.dir, "student")?.finishedAt;
    lines.length = 0;
    const changed = readStudyConfig(file).config;
    changed.eval.splits = [{ name: "test", maxSentences: 1 }];
    await runStudy(changed, { log });
    const reran = lines
      .filter((l) => /: (running|its config)/.test(l))
      .map((l) => l.split("] ")[1]?.split(":")[0]);
    expect(reran).toEqual([
      "eval-dense",
      "eval-tokenmoe",
      "eval-taskmoe",
      "eval-extracted",
      "eval-student",
      "eval-pruned-2",
      "report",
    ]);
    expect(readDone(study.dir, "student")?.finishedAt).toBe(before);
    rmSync(dir, { recursive: true, force: true });
  }, 600_000);
});
