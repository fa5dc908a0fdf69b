import type { ModelConfig } from "@polymoe/model";
import { describe, expect, it } from "vitest";

import {
  modelConfigFor,
  parseOverrides,
  readConfigFile,
  resolveRunConfig,
  runTraining,
  SHIPPED_CONFIGS,
  studentModelConfigFor,
} from "../src/index.js";

const space = {
  languages: ["en", "de", "fr"],
  pairs: ["en-de", "de-en", "en-fr", "fr-en", "en-en", "de-de", "fr-fr"],
  taskTypes: ["translate", "denoise"] as const,
};

const taskSpace = { ...space, taskTypes: [...space.taskTypes] };

/** The model config of the shipped run whose run.dir is `teacher` (the teacher a distill config names). */
function teacherOf(teacher: string): ModelConfig {
  const name = SHIPPED_CONFIGS.find((n) => {
    const { value } = readConfigFile(n);
    return (value as { run: { dir: string } }).run.dir === teacher;
  });
  if (!name) throw new Error(`no shipped config trains ${teacher}`);
  return modelConfigFor(resolveRunConfig(readConfigFile(name).value, {}), taskSpace, 1000);
}

describe("run configs", () => {
  it("every shipped config validates", () => {
    for (const name of SHIPPED_CONFIGS) {
      const { value, source } = readConfigFile(name);
      const c = resolveRunConfig(value, {}, source);
      expect(c.run.dir).toMatch(/^runs\//);
      const m = c.distill
        ? studentModelConfigFor(c, teacherOf(c.distill.teacher), taskSpace, 1000)
        : modelConfigFor(c, taskSpace, 1000);
      expect(m.vocabSize).toBe(1000);
    }
  });

  it("flags override the file with JSON values; task counts come from the corpus", () => {
    const { overrides, rest } = parseOverrides([
      "--train.maxSteps",
      "7",
      "--run.dir=runs/x",
      "--fresh",
      "--model.moe.decoder.taskKey",
      "language-pair",
    ]);
    expect(rest).toEqual(["--fresh"]);
    const c = resolveRunConfig(readConfigFile("quick").value, overrides);
    expect(c.train.maxSteps).toBe(7);
    expect(c.run.dir).toBe("runs/x");
    const m = modelConfigFor(c, { ...space, taskTypes: [...space.taskTypes] }, 500);
    expect(m.moe?.decoder?.router).toMatchObject({ type: "task", numTasks: 7 });
  });

  it("errors are one line each, naming the field and the nearest valid key", () => {
    const base = readConfigFile("quick").value;
    expect(() => resolveRunConfig(base, { train: { maxStpes: 5 } })).toThrow(
      /train.maxStpes: unknown key \(did you mean 'maxSteps'\?\)/,
    );
    expect(() => resolveRunConfig(base, { train: { maxSteps: "lots" } })).toThrow(
      /train.maxSteps: .*got 'lots'/,
    );
    expect(() => resolveRunConfig(base, { model: { dModl: 64 } })).toThrow(
      /model.dModl: unknown key \(did you mean 'dModel'\?\)/,
    );
    const c = resolveRunConfig(base, {
      model: { moe: { decoder: { router: { type: "task", numTasks: 2 } } } },
    });
    expect(() => modelConfigFor(c, { ...space, taskTypes: [...space.taskTypes] }, 500)).toThrow(
      /model.moe.decoder.router.numTasks: 2, but the corpus has 3 'target-language' task ids/,
    );
    expect(() => readConfigFile("quik")).toThrow(
      /does not exist \(shipped configs: quick, quick-tokenmoe, quick-distill, quick-distill-seq, dense-base, tokenmoe-base, taskmoe-base\)/,
    );
  });

  it("the parallel section validates strictly, and a split layout in one process says how to launch it", async () => {
    const base = readConfigFile("quick").value;
    expect(resolveRunConfig(base, {}).parallel).toEqual({
      backend: "auto",
      ep: 1,
      tp: 1,
      zeroStage: 0,
      bucketMb: 25,
      checks: true,
    });
    expect(() => resolveRunConfig(base, { parallel: { zero_stage: 1 } })).toThrow(
      /parallel.zero_stage: unknown key \(did you mean 'zeroStage'\?\)/,
    );
    const { overrides } = parseOverrides(["--parallel.ep", "2", "--parallel.zeroStage", "1"]);
    const c = resolveRunConfig(base, overrides);
    expect(c.parallel).toMatchObject({ ep: 2, zeroStage: 1 });
    await expect(runTraining(c, { log: () => {} })).rejects.toThrow(
      /parallel.ep = 2 and parallel.tp = 1 need several ranks, this is one process: run it as `polymoe launch -n 2 -- train/,
    );
  });
});

describe("distill section", () => {
  const base = readConfigFile("quick-distill").value;

  it("sizes the student like the teacher's extracted subnetwork, the model section on top; refuses MoE students", () => {
    const c = resolveRunConfig(base, { model: { dropout: 0.2 } });
    const teacher = teacherOf("runs/quick-tokenmoe");
    const m = studentModelConfigFor(c, teacher, taskSpace, 1000);
    expect(m.moe).toBeUndefined();
    expect(m.ffnWidths).toEqual({ encoder: { "1": 1024 }, decoder: { "1": 1024 } }); // k 2 x dFF 512
    expect(m.dropout).toBe(0.2);
    expect(m.dModel).toBe(teacher.dModel);
    const withMoe = resolveRunConfig(base, {
      model: { moe: { decoder: { numExperts: 2, router: { type: "topk" } } } },
    });
    expect(() => studentModelConfigFor(withMoe, teacher, taskSpace, 1000)).toThrow(
      /student must be dense: remove model.moe/,
    );
    // student 'model': the model section alone (checked at once, like any model).
    expect(() => resolveRunConfig(base, { distill: { student: "model" } })).toThrow(/model.dModel: required/);
  });

  it("bad values are one line each: alpha outside [0, 1], a missing mode, keys of the other mode", () => {
    expect(() => resolveRunConfig(base, { distill: { alpha: 1.5 } })).toThrow(
      /distill.alpha: .*<=1, got 1.5/,
    );
    expect(() => resolveRunConfig(base, { distill: { alpha: -1 } })).toThrow(/distill.alpha: .*>=0, got -1/);
    expect(() => resolveRunConfig(base, { distill: { cache: { topK: 0 } } })).toThrow(
      /distill.cache.topK: .*got 0/,
    );
    const seq = readConfigFile("quick-distill-seq").value;
    expect(() => resolveRunConfig(seq, { distill: { alpha: 0.5 } })).toThrow(/distill.alpha: unknown key/);
    expect(() => resolveRunConfig(seq, { distill: { beamsize: 2 } })).toThrow(
      /distill.beamsize: unknown key \(did you mean 'beamSize'\?\)/,
    );
    const { distill, ...rest } = base as { distill: Record<string, unknown> };
    const { mode: _, ...noMode } = distill;
    expect(() => resolveRunConfig({ ...rest, distill: noMode }, {})).toThrow(/distill.mode/);
  });
});
