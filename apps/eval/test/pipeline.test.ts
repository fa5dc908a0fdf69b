// The evaluation commands end to end: an offline corpus (UDHR), a tiny TaskMoE
// trained for a few steps, then eval, extract and prune on it, and their errors.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const polymoe = (args: string[]) =>
  spawnSync(
    process.execPath,
    ["--conditions=@polymoe/source", "--import", "tsx", "apps/cli/src/bin.ts", ...args],
    {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, POLYMOE_NUM_THREADS: "1", CI: "1" },
    },
  );

const dir = mkdtempSync(path.join(tmpdir(), "polymoe-evalcli-"));
const run = path.join(dir, "run");

beforeAll(() => {
  const corpus = path.join(dir, "corpus");
  const prep = polymoe([
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
  ]);
  expect(prep.status, prep.stderr).toBe(0);
  const config = {
    data: { corpus, loader: { maxTokens: 512, maxSourceLength: 32, maxTargetLength: 32 } },
    model: {
      dModel: 32,
      heads: 2,
      dFF: 32,
      encoderLayers: 1,
      decoderLayers: 2,
      maxLength: 40,
      moe: {
        encoder: { numExperts: 4, layers: "all", router: { type: "topk", k: 2, evalCapacityFactor: 0 } },
        decoder: { numExperts: 6, router: { type: "task", k: 2 } },
      },
    },
    train: {
      maxSteps: 4,
      evalEvery: 0,
      optimizer: { lr: 0.001, schedule: { type: "constant", warmupSteps: 1 } },
    },
    dev: { lossSentencesPerPair: 2, bleuSentencesPerPair: 0 },
    run: { dir: run },
  };
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  const train = polymoe(["train", "--config", path.join(dir, "config.json")]);
  expect(train.status, train.stderr).toBe(0);
}, 300_000);

describe("polymoe eval / extract / prune", () => {
  it("eval writes a per-language report, JSON, plots and hypotheses", () => {
    const r = polymoe([
      "eval",
      "--checkpoint",
      run,
      "--split",
      "dev",
      "--max-sentences",
      "2",
      "--out",
      path.join(dir, "ev"),
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\| en-de \| 2 \|/);
    const json = JSON.parse(readFileSync(path.join(dir, "ev", "report.json"), "utf8"));
    expect(Object.keys(json.averages)).toEqual(["all", "en-xx", "xx-en", "high", "low"]);
    expect(json.usage.map((u: { layer: string }) => u.layer)).toEqual([
      "encoder.layers.0",
      "decoder.layers.1",
    ]);
    for (const f of ["report.md", "bleu.svg", "usage-decoder.layers.1.svg", "hypotheses/en-fr.txt"]) {
      expect(existsSync(path.join(dir, "ev", f)), f).toBe(true);
    }
  });

  it("extract writes a standalone subnetwork that eval loads; prune reports BLEU against N", () => {
    const sub = path.join(dir, "sub-fr");
    const x = polymoe(["extract", "--checkpoint", run, "--task", "fr", "--out", sub]);
    expect(x.status, x.stderr).toBe(0);
    expect(x.stdout).toMatch(/extracted 'fr': [\d,]+ parameters \([\d.]+% of [\d,]+\)/);
    const ev = polymoe([
      "eval",
      "--checkpoint",
      sub,
      "--split",
      "dev",
      "--max-sentences",
      "2",
      "--directions",
      "en-fr",
      "--out",
      path.join(dir, "ev-sub"),
    ]);
    expect(ev.status, ev.stderr).toBe(0);
    const p = polymoe([
      "prune",
      "--checkpoint",
      run,
      "--keep",
      "2,3",
      "--max-sentences",
      "2",
      "--out",
      path.join(dir, "pruned"),
    ]);
    expect(p.status, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/keep 2: BLEU [\d.]+/);
    expect(existsSync(path.join(dir, "pruned", "prune.svg"))).toBe(true);
  });

  it("bad input gives one clear line and exit code 2", () => {
    const cases: [string[], RegExp][] = [
      [
        ["eval", "--checkpoint", path.join(dir, "nope")],
        /is neither a checkpoint \(no state.json\) nor a run directory/,
      ],
      [["eval", "--checkpoint", run, "--split", "tset"], /no split 'tset'; available: /],
      [
        ["extract", "--checkpoint", run, "--task", "xx", "--out", path.join(dir, "x")],
        /unknown task 'xx': target languages are en, /,
      ],
      [["prune", "--checkpoint", run, "--keep", "1"], /routes every token to k=2 experts; keep at least 2/],
      [["eval"], /--checkpoint DIR is required/],
    ];
    for (const [args, re] of cases) {
      const r = polymoe(args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(re);
    }
  });
});
