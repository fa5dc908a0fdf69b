import { describe, expect, it } from "vitest";

import {
  createWorld,
  launchedByMpirun,
  nearestName,
  ParallelError,
  parseParallelConfig,
} from "../src/index.js";

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
    expect(() => parseParallelConfig({ zero_stage: 1 }, "train.json: parallel")).toThrow(
      "train.json: parallel:\n  unknown key 'zero_stage' (did you mean 'zeroStage'?); valid keys: backend, ep, tp, zeroStage, bucketMb, checks",
    );
    const bad = () => parseParallelConfig({ ep: 0, backend: "nccl" });
    expect(bad).toThrow(ParallelError);
    expect(bad).toThrow(/backend: .*"auto"\|"mpi"\|"local"/);
    expect(bad).toThrow(/ep: Too small: expected number to be >=1/);
    expect(nearestName("bucketMB", ["bucketMb", "ep"])).toBe("bucketMb");
    expect(nearestName("zzzzzz", ["ep", "tp"])).toBeNull();
  });

  it("auto picks local outside mpirun", () => {
    expect(launchedByMpirun({})).toBe(false);
    expect(launchedByMpirun({ OMPI_COMM_WORLD_SIZE: "2" })).toBe(true);
    if (!launchedByMpirun()) expect(createWorld({ backend: "auto", checks: true }).backend).toBe("local");
  });
});
