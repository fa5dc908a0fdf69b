import { describe, expect, it } from "vitest";

import { MetricsError, resolveBleuConfig, resolveChrfConfig } from "../src/index.js";

function message(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(MetricsError);
    expect((e as MetricsError).code).toBe("INVALID_CONFIG");
    return (e as Error).message;
  }
  throw new Error("did not throw");
}

describe("configs", () => {
  it("fill sacreBLEU's defaults", () => {
    expect(resolveBleuConfig()).toEqual({
      tokenize: "13a",
      lowercase: false,
      smoothMethod: "exp",
      maxNgramOrder: 4,
      effectiveOrder: false,
    });
    expect(resolveChrfConfig()).toEqual({
      charOrder: 6,
      wordOrder: 0,
      beta: 2,
      lowercase: false,
      whitespace: false,
      epsSmoothing: false,
    });
  });

  it("reject unknown keys, naming the nearest valid one", () => {
    expect(message(() => resolveBleuConfig({ tokenise: "intl" } as never))).toBe(
      "BLEU options: unknown key 'tokenise' (did you mean 'tokenize'?); valid keys: tokenize, lowercase, smoothMethod, smoothValue, maxNgramOrder, effectiveOrder",
    );
    expect(message(() => resolveChrfConfig({ word_order: 2 } as never))).toMatch(
      /^chrF options: unknown key 'word_order' \(did you mean 'wordOrder'\?\)/,
    );
  });

  it("reject invalid values with the valid choices and what was given", () => {
    expect(message(() => resolveBleuConfig({ tokenize: "13b" as "13a" }))).toBe(
      "BLEU options: tokenize must be one of 13a, intl, zh, char, none; got '13b'",
    );
    expect(message(() => resolveBleuConfig({ smoothMethod: "add-one" as "add-k" }))).toBe(
      "BLEU options: smoothMethod must be one of exp, floor, add-k, none; got 'add-one'",
    );
    expect(message(() => resolveBleuConfig({ smoothValue: 0.1 }))).toBe(
      "BLEU options: smoothValue: smoothValue only applies to smoothMethod 'floor' or 'add-k', not 'exp'; drop it or choose one of those",
    );
    expect(message(() => resolveBleuConfig({ smoothMethod: "floor", smoothValue: -1 }))).toBe(
      "BLEU options: smoothValue must be > 0; got -1",
    );
    expect(message(() => resolveBleuConfig({ maxNgramOrder: 2.5 }))).toBe(
      "BLEU options: maxNgramOrder must be an integer; got 2.5",
    );
    expect(message(() => resolveChrfConfig({ wordOrder: -1 }))).toBe(
      "chrF options: wordOrder must be >= 0; got -1",
    );
    expect(message(() => resolveChrfConfig({ charOrder: 0 }))).toMatch(/charOrder and wordOrder are both 0/);
    expect(message(() => resolveChrfConfig({ lowercase: "yes" as unknown as boolean }))).toBe(
      "chrF options: lowercase must be a boolean; got 'yes'",
    );
  });
});
