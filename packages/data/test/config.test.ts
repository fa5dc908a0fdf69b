import { describe, expect, it } from "vitest";

import { mergeConfig, PREPARE_PRESETS, parseLoaderConfig, parsePrepareConfig } from "../src/index.js";

describe("config", () => {
  it("fills defaults and applies presets", () => {
    const q = parsePrepareConfig(PREPARE_PRESETS.quick);
    expect(q.languages).toEqual(["de", "es", "fr", "ru"]);
    expect(q.tokenizer.vocabSize).toBe(8000);
    expect(q.sources.fallbackToUdhr).toBe(true);
    expect(q.cleaning.strict).toBe(true);
    const f = parsePrepareConfig(PREPARE_PRESETS.full);
    expect(f.sources.debian.packages).toHaveLength(31);
    expect(f.maxLanguages).toBe(50);
    expect(parseLoaderConfig({}).temperature).toBe(5);
  });

  it("rejects unknown keys naming the nearest valid key, and bad values with what was given", () => {
    expect(() => parsePrepareConfig({ tokenizer: { vocabSise: 8000 } })).toThrow(
      /unknown key 'tokenizer\.vocabSise' — did you mean 'vocabSize'\?/,
    );
    expect(() => parseLoaderConfig({ maxToken: 10 })).toThrow(
      /unknown key 'maxToken' — did you mean 'maxTokens'\?/,
    );
    expect(() => parsePrepareConfig({ tokenizer: { vocabSize: 10 } })).toThrow(
      /tokenizer\.vocabSize: .*>=1000.* \(got 10\)/,
    );
    expect(() => parsePrepareConfig({ languages: ["fr", "FR!"] })).toThrow(/languages\.1: a language code/);
    expect(() =>
      parsePrepareConfig({
        sources: { files: [{ format: "tsv", path: "a.tsv", src: "en", tgt: "fr", rol: "test" }] },
      }),
    ).toThrow(/unknown key 'sources\.files\.0\.rol' — did you mean 'role'\?/);
  });

  it("merges layers: later wins, nested objects merge, arrays replace", () => {
    expect(mergeConfig({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] } }, { a: { b: 2 } })).toEqual({
      a: { b: 2, c: [3] },
    });
  });
});
