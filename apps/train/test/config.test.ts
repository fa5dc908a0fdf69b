import { describe, expect, it } from "vitest";

import {
  modelConfigFor,
  parseOverrides,
  readConfigFile,
  resolveRunConfig,
  runTraining,
  SHIPPED_CONFIGS,
} from "../src/index.js";

const space = {
  languages: ["en", "de", "fr"],
  pairs: ["en-de", "de-en", "en-fr", "fr-en", "en-en", "de-de", "fr-fr"],
  taskTypes: ["translate", "denoise"] as const,
};

describe("run configs", () => {
  it("every shipped config validates", () => {
    for (const name of SHIPPED_CONFIGS) {
      const { value, source } = readConfigFile(name);
      const c = resolveRunConfig(value, {}, source);
      expect(c.run.dir).toMatch(/^runs\//);
      expect(modelConfigFor(c, { ...space, taskTypes: [...space.taskTypes] }, 1000).vocabSize).toBe(1000);
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
      /does not exist \(shipped configs: quick, dense-base, tokenmoe-base, taskmoe-base\)/,
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
