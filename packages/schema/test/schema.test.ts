import { describe, expect, it } from "vitest";
import { z } from "zod";

import { ConfigError, editDistance, nearest, parseConfig } from "../src/index.js";

const Router = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("topk"),
    k: z.int().min(1).default(2),
    capacityFactor: z.number().default(1.25),
  }),
  z.strictObject({ type: z.literal("task"), k: z.int().min(1).default(2), numTasks: z.int().min(1) }),
]);
const Layer = z.strictObject({ dModel: z.int().positive(), router: Router });

describe("parseConfig", () => {
  it("returns typed values with defaults applied", () => {
    expect(parseConfig(Layer, { dModel: 8, router: { type: "topk" } })).toEqual({
      dModel: 8,
      router: { type: "topk", k: 2, capacityFactor: 1.25 },
    });
  });

  it("names the path, the expectation and the value", () => {
    expect(() =>
      parseConfig(Layer, { dModel: 8, router: { type: "topk", k: 0 } }, { prefix: "model" }),
    ).toThrow(/model\.router\.k: Too small: expected number to be >=1, got 0/);
  });

  it("suggests the nearest valid key for a typo, from the matching union option", () => {
    try {
      parseConfig(Layer, { dModel: 8, router: { type: "topk", capacityFactr: 2 } });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).issues).toEqual([
        "router.capacityFactr: unknown key (did you mean 'capacityFactor'?)",
      ]);
    }
  });

  it("lists the valid keys when nothing is close, and reports every problem", () => {
    try {
      parseConfig(Layer, { dModel: -1, zzz: 1, router: { type: "task" } });
      expect.unreachable();
    } catch (e) {
      const issues = (e as ConfigError).issues;
      expect(issues).toHaveLength(3);
      expect(issues).toContain("zzz: unknown key (valid: dModel, router)");
      expect(issues.some((l) => l.startsWith("dModel:") && l.endsWith("got -1"))).toBe(true);
      expect(issues).toContain("router.numTasks: required (expected number)");
    }
  });

  it("edit distance and nearest", () => {
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(nearest("capasity", ["capacity", "k"])).toBe("capacity");
    expect(nearest("xyz", ["capacity", "k"])).toBeUndefined();
  });
});

import { defaultsUsed } from "../src/index.js";

describe("defaultsUsed", () => {
  it("lists the fields the schema filled in, with their values", () => {
    const parsed = parseConfig(Layer, { dModel: 8, router: { type: "topk", k: 3 } });
    expect(defaultsUsed({ dModel: 8, router: { type: "topk", k: 3 } }, parsed)).toEqual([
      "router.capacityFactor=1.25",
    ]);
  });
});
