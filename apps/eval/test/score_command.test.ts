import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { corpusBleu, corpusChrf, formatScore, formatSignature, roundScore } from "@polymoe/metrics";
import { afterAll, describe, expect, it, vi } from "vitest";

import { command } from "../src/commands/score.js";
import { firstInvalidUtf8, readSegments } from "../src/text_file.js";

const dir = mkdtempSync(path.join(tmpdir(), "polymoe-score-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string | Uint8Array): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
}

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, "log").mockImplementation((s: string) => void out.push(s));
  const error = vi.spyOn(console, "error").mockImplementation((s: string) => void err.push(s));
  try {
    const status = await command.run(argv);
    return { status, stdout: out.join("\n"), stderr: err.join("\n"), errLines: err };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

const hyps = ["the cat sat on the mat", "Hello, world!", ""];
const refs = ["the cat sat on a mat", "Hello world!", ""];
const ref = file("ref.txt", `${refs.join("\n")}\n`);
const hyp = file("hyp.txt", `${hyps.join("\n")}\n`);

describe("polymoe score", () => {
  it("prints sacreBLEU-style score lines, then the signatures", async () => {
    const r = await run("--ref", ref, "--hyp", hyp);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    const bleu = corpusBleu(hyps, [refs]);
    const chrf = corpusChrf(hyps, [refs]);
    const chrfpp = corpusChrf(hyps, [refs], { wordOrder: 2 });
    expect(r.stdout.split("\n")).toEqual([
      formatScore(bleu),
      formatScore(chrf),
      formatScore(chrfpp),
      `BLEU|${formatSignature(bleu.signature)}`,
      `chrF2|${formatSignature(chrf.signature)}`,
      `chrF2++|${formatSignature(chrfpp.signature)}`,
    ]);
    expect(r.stdout).toMatch(/^BLEU = \d+\.\d\d \d+\.\d\/[\d.]+\/[\d.]+\/[\d.]+ \(BP = 1\.000 ratio = /);
  });

  it("--json prints exactly one object with two-decimal scores of the requested metrics", async () => {
    const r = await run("--ref", ref, "--hyp", hyp, "--json");
    expect(r.status).toBe(0);
    expect(r.stdout.split("\n")).toHaveLength(1);
    const json = JSON.parse(r.stdout);
    expect(Object.keys(json)).toEqual(["bleu", "chrf", "chrfpp"]);
    expect(json.bleu).toBe(roundScore(corpusBleu(hyps, [refs]).score));
    for (const v of Object.values(json) as number[]) expect(Math.round(v * 100)).toBeCloseTo(v * 100, 8);
    const only = JSON.parse(
      (await run("--ref", ref, "--hyp", hyp, "--json", "--metric", "chrf++,bleu")).stdout,
    );
    expect(Object.keys(only)).toEqual(["chrfpp", "bleu"]);
  });

  it("passes tokenizer, lowercase and smoothing through and shows them in the signatures", async () => {
    const r = await run(
      "--ref",
      ref,
      "--hyp",
      hyp,
      "--tokenize",
      "intl",
      "--lowercase",
      "--smooth-method",
      "floor",
      "--smooth-value",
      "0.2",
      "--short",
    );
    expect(r.status).toBe(0);
    const bleu = corpusBleu(hyps, [refs], {
      tokenize: "intl",
      lowercase: true,
      smoothMethod: "floor",
      smoothValue: 0.2,
    });
    expect(r.stdout).toContain(formatScore(bleu));
    expect(r.stdout).toContain("BLEU|#:1|c:lc|e:no|tok:intl|s:floor[0.20]|");
    expect(r.stdout).toContain("chrF2|#:1|c:lc|e:yes|nc:6|nw:0|s:no|");
  });

  it("accepts several reference files", async () => {
    const ref2 = file("ref2.txt", "the cat sat on the mat\nHello, world!\n\n");
    const r = await run("--ref", ref, "--ref", ref2, "--hyp", hyp, "--metric", "bleu", "--width", "4");
    expect(r.stdout.split("\n")[0]).toBe(formatScore(corpusBleu(hyps, [refs, hyps]), { width: 4 }));
    expect(r.stdout).toContain("BLEU|nrefs:2|");
  });

  it("reads files as sacreBLEU does: \\n-separated, trailing whitespace and \\r stripped, BOM kept", async () => {
    const crlf = file("crlf.txt", "the cat sat on the mat  \r\nHello, world!\t\r\n\r\n");
    expect(readSegments(crlf, "--hyp")).toEqual(hyps);
    expect(readSegments(file("nofinal.txt", "a\nb"), "--hyp")).toEqual(["a", "b"]);
    expect(readSegments(file("blank.txt", "\n"), "--hyp")).toEqual([""]);
    expect(readSegments(file("inner.txt", "a\u2028b\rc\n"), "--hyp")).toEqual(["a\u2028b\rc"]);
    expect(readSegments(file("bom.txt", "\ufeffa\n"), "--hyp")).toEqual(["\ufeffa"]);
    expect(readSegments(file("lead.txt", "  a b\n"), "--hyp")).toEqual(["  a b"]);
  });
});

describe("polymoe score rejects bad input with one line and exit code 2", () => {
  const cases: [string, string[], RegExp][] = [
    [
      "a missing file",
      ["--ref", ref, "--hyp", path.join(dir, "nope.txt")],
      /^polymoe score: --hyp file '.*nope\.txt' cannot be read: no such file \(ENOENT\); pass the path of a readable text file$/,
    ],
    [
      "a directory",
      ["--ref", dir, "--hyp", hyp],
      /^polymoe score: --ref file '.*' cannot be read: it is a directory \(EISDIR\)/,
    ],
    [
      "ref/hyp line-count mismatch",
      ["--ref", file("short.txt", "one line\n"), "--hyp", hyp],
      /^polymoe score: --ref file '.*short\.txt' has 1 lines but --hyp file '.*hyp\.txt' has 3; each hypothesis line must pair with one reference line$/,
    ],
    [
      "invalid UTF-8",
      [
        "--ref",
        ref,
        "--hyp",
        file("latin1.txt", Buffer.from([0x61, 0x0a, 0x62, 0x0a, 0x63, 0x61, 0x66, 0xe9, 0x0a])),
      ],
      /^polymoe score: --hyp file '.*latin1\.txt' is not valid UTF-8: line 3, byte 4 of the line \(0xe9\); convert it to UTF-8/,
    ],
    [
      "an empty hypothesis file",
      ["--ref", file("empty-ref.txt", ""), "--hyp", file("empty.txt", "")],
      /^polymoe score: --hyp file '.*empty\.txt' has no lines; nothing to score$/,
    ],
    [
      "an unknown tokenizer",
      ["--ref", ref, "--hyp", hyp, "--tokenize", "13b"],
      /^polymoe score: unknown --tokenize '13b'; valid tokenizers: 13a, intl, zh, char, none$/,
    ],
    [
      "an unknown metric",
      ["--ref", ref, "--hyp", hyp, "--metric", "bleu,ter"],
      /^polymoe score: unknown --metric 'ter'; valid metrics: bleu, chrf, chrf\+\+$/,
    ],
    ["no --ref", ["--hyp", hyp], /^polymoe score: --ref FILE is required/],
    ["no --hyp", ["--ref", ref], /^polymoe score: --hyp FILE is required/],
    [
      "a misspelt option",
      ["--ref", ref, "--hyp", hyp, "--tokenzie", "intl"],
      /^polymoe score: unknown option '--tokenzie' \(did you mean '--tokenize'\?\); valid options: --ref, --hyp, /,
    ],
    ["an option without its value", ["--ref", ref, "--hyp"], /^polymoe score: --hyp needs a value/],
    [
      "a positional argument",
      ["--ref", ref, "--hyp", hyp, "extra.txt"],
      /^polymoe score: unexpected argument/,
    ],
    [
      "a bad width",
      ["--ref", ref, "--hyp", hyp, "--width", "two"],
      /--width must be an integer from 0 to 10/,
    ],
    [
      "a smoothing value without a method that takes one",
      ["--ref", ref, "--hyp", hyp, "--smooth-value", "0.1"],
      /--smooth-value applies only to --smooth-method floor or add-k, not 'exp'/,
    ],
    [
      "an unknown smoothing method",
      ["--ref", ref, "--hyp", hyp, "--smooth-method", "add-1"],
      /unknown --smooth-method 'add-1'; valid methods: exp, floor, add-k, none/,
    ],
  ];

  it.each(cases)("%s", async (_name, argv, expected) => {
    const r = await run(...argv);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.errLines).toHaveLength(1);
    expect(r.errLines[0]!.includes("\n")).toBe(false);
    expect(r.errLines[0]).toMatch(expected);
  });

  it("--help prints the usage and exits 0", async () => {
    const r = await run("--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: polymoe score --ref FILE/);
  });
});

describe("firstInvalidUtf8", () => {
  it.each([
    [[0x61, 0x62], 2],
    [[0xc3, 0xa9, 0x41], 3],
    [[0x41, 0xc3], 1], // truncated sequence
    [[0xc0, 0x80], 0], // overlong
    [[0xed, 0xa0, 0x80], 0], // UTF-16 surrogate
    [[0xf4, 0x90, 0x80, 0x80], 0], // past U+10FFFF
    [[0xf0, 0x9f, 0x98, 0x80, 0xff], 4],
  ])("%j -> %d", (bytes, expected) => {
    expect(firstInvalidUtf8(Uint8Array.from(bytes))).toBe(expected);
  });
});
