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
      "BLEU options: tokenise: unknown key (did you mean 'tokenize'?)",
    );
    expect(message(() => resolveChrfConfig({ word_order: 2 } as never))).toBe(
      "chrF options: word_order: unknown key (did you mean 'wordOrder'?)",
    );
  });

  it("reject invalid values with the valid choices and what was given", () => {
    expect(message(() => resolveBleuConfig({ tokenize: "13b" as "13a" }))).toBe(
      'BLEU options: tokenize: Invalid option: expected one of "13a"|"intl"|"zh"|"char"|"none", got \'13b\'',
    );
    expect(message(() => resolveBleuConfig({ smoothMethod: "add-one" as "add-k" }))).toBe(
      'BLEU options: smoothMethod: Invalid option: expected one of "exp"|"floor"|"add-k"|"none", got \'add-one\'',
    );
    expect(message(() => resolveBleuConfig({ smoothValue: 0.1 }))).toBe(
      "BLEU options: smoothValue: only used by smoothMethod 'floor' or 'add-k' (smoothMethod is 'exp'); remove it or change smoothMethod, got 0.1",
    );
    expect(message(() => resolveBleuConfig({ smoothMethod: "floor", smoothValue: -1 }))).toMatch(
      /^BLEU options: smoothValue: .*>0, got -1$/,
    );
    expect(message(() => resolveBleuConfig({ maxNgramOrder: 2.5 }))).toMatch(
      /^BLEU options: maxNgramOrder: .*int.*got 2\.5$/,
    );
    expect(message(() => resolveChrfConfig({ wordOrder: -1 }))).toMatch(
      /^chrF options: wordOrder: .*>=0, got -1$/,
    );
    expect(message(() => resolveChrfConfig({ charOrder: 0 }))).toBe(
      "chrF options: charOrder: charOrder + wordOrder must be at least 1, or no n-gram would be counted, got 0",
    );
    expect(message(() => resolveChrfConfig({ lowercase: "yes" as unknown as boolean }))).toMatch(
      /^chrF options: lowercase: expected boolean.*got 'yes'$/,
    );
  });
});
