import { ConfigError } from "@polymoe/schema";
import { describe, expect, it } from "vitest";

import { createWorld, launchedByMpirun, parseParallelConfig } from "../src/index.js";

describe("parallel config", () => {
  it("fills defaults", () => {
    expect(parseParallelConfig({})).toEqual({
      backend: "auto",
      ep: 1,
      tp: 1,
      zeroStage: 0,
      bucketMb: 25,
      checks: true,
    });
    expect(parseParallelConfig({ ep: 4, zeroStage: 2 })).toMatchObject({ ep: 4, zeroStage: 2 });
  });

  it("unknown keys fail with the nearest valid name; bad values name the field", () => {
    expect(() => parseParallelConfig({ zero_stage: 1 }, "train.json")).toThrow(
      "train.json: invalid config:\n  parallel.zero_stage: unknown key (did you mean 'zeroStage'?)",
    );
    const bad = () => parseParallelConfig({ ep: 0, backend: "nccl" });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/parallel\.backend: .*"auto"\|"mpi"\|"local", got 'nccl'/);
    expect(bad).toThrow(/parallel\.ep: Too small: expected number to be >=1, got 0/);
  });

  it("auto picks local outside mpirun", () => {
    expect(launchedByMpirun({})).toBe(false);
    expect(launchedByMpirun({ OMPI_COMM_WORLD_SIZE: "2" })).toBe(true);
    expect(launchedByMpirun({ OMPI_COMM_WORLD_SIZE: "" })).toBe(false);
    if (!launchedByMpirun()) expect(createWorld({ backend: "auto", checks: true }).backend).toBe("local");
  });
});
