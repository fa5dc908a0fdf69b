import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { nativeInfo } from "@polymoe/kernels";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(
    process.execPath,
    ["--conditions=@polymoe/source", "--import", "tsx", "apps/cli/src/bin.ts", ...args],
    {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, ...env },
    },
  );

describe("polymoe CLI", () => {
  it("lists its commands and rejects unknown ones by listing the valid ones", () => {
    const help = cli(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/info\s+show the tensor backend/);
    const bad = cli(["trian"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(
      /unknown command 'trian' \(did you mean 'train'\?\). Valid commands: info, data, train, study, smoke, eval, extract, prune, score, launch, comm/,
    );
  });

  it("info --json reports the backend it selected", () => {
    const r = cli(["info", "--json"]);
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.backend).toBe(nativeInfo().available ? "polymoe-native" : "cpu");
  });

  it("smoke trains and the loss falls (exit 0) on the default backend", () => {
    const r = cli(["smoke", "--steps", "12"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/ok: loss .* -> .* in 12 steps/);
  }, 120_000);

  const native = nativeInfo();
  it.skipIf(!native.available)(
    `smoke follows the same loss trajectory on the native and the stock cpu backend${
      native.available ? "" : ` [skipped: native addon unavailable: ${native.reason}]`
    }`,
    () => {
      const losses = (backend: string) => {
        const r = cli(["smoke", "--steps", "12", "--backend", backend]);
        expect(r.status).toBe(0);
        return [...r.stdout.matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
      };
      const native = losses("native");
      const cpu = losses("cpu");
      expect(native.length).toBeGreaterThanOrEqual(3);
      native.forEach((l, i) => {
        expect(Math.abs(l - cpu[i]!)).toBeLessThan(2e-3);
      });
    },
    180_000,
  );

  it("data prepare builds a corpus offline from UDHR and prints the per-language table", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "polymoe-cli-data-"));
    const r = cli([
      "data",
      "prepare",
      "--preset",
      "quick",
      "--no-debian",
      "--udhr",
      "train",
      "--languages",
      "fr,de",
      "--vocab-size",
      "1200",
      "--out",
      out,
      "--cache-dir",
      path.join(out, "cache"),
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/defaults used: .*seed=1/);
    expect(r.stdout).toMatch(/^fr\s+French\s+\d+\s+\d+\s+\d+/m);
    expect(r.stdout).toMatch(/corpus ready: .* \(2 languages, \d+ training pairs, tokenizer 1200\)/);
    const s = cli(["data", "summary", "--corpus", out]);
    expect(s.status).toBe(0);
    expect(s.stdout).toMatch(/^de\s+German/m);
    await rm(out, { recursive: true, force: true });
  }, 120_000);

  it("data prepare rejects bad presets, flags and languages with one clear line", () => {
    const preset = cli(["data", "prepare", "--preset", "huge"]);
    expect(preset.status).toBe(2);
    expect(preset.stderr.trim()).toBe("polymoe data: --preset must be one of quick, full, got 'huge'");
    const lang = cli(["data", "prepare", "--no-debian", "--languages", "fr,fra_x", "--out", os.tmpdir()]);
    expect(lang.status).toBe(2);
    expect(lang.stderr).toMatch(/languages\.1: a language code like/);
    const unknown = cli([
      "data",
      "prepare",
      "--no-debian",
      "--languages",
      "fr,tlh",
      "--out",
      path.join(os.tmpdir(), "polymoe-x"),
    ]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/UNKNOWN_LANGUAGE: prepare\.languages\[1\]: unknown language code 'tlh'/);
    const flag = cli(["data", "prepare", "--vocab-sise", "8000"]);
    expect(flag.status).toBe(2);
    expect(flag.stderr).toMatch(/Unknown option '--vocab-sise'/);
  });

  it("score runs from the registry: JSON on stdout, bad input one line and exit 2", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "polymoe-cli-score-"));
    try {
      const ref = path.join(dir, "ref.txt");
      const hyp = path.join(dir, "hyp.txt");
      writeFileSync(ref, "the cat sat on a mat\n");
      writeFileSync(hyp, "the cat sat on the mat\n");
      const r = cli(["score", "--ref", ref, "--hyp", hyp, "--json", "--metric", "bleu"]);
      expect(r.status).toBe(0);
      // 1-4-gram precisions 5/6, 3/5, 2/4, 1/3: BLEU = 100 * 12^(-1/4) = 53.73
      expect(JSON.parse(r.stdout)).toEqual({ bleu: 53.73 });
      const bad = cli(["score", "--ref", ref, "--hyp", path.join(dir, "missing.txt")]);
      expect(bad.status).toBe(2);
      expect(bad.stdout).toBe("");
      expect(bad.stderr.trim().split("\n")).toHaveLength(1);
      expect(bad.stderr).toMatch(/^polymoe score: --hyp file '.*missing\.txt' cannot be read: no such file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("study: help, a missing or bad config give one clear line", () => {
    const help = cli(["study", "--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/usage: polymoe study --config FILE/);
    const none = cli(["study"]);
    expect(none.status).toBe(2);
    expect(none.stderr.trim()).toBe(
      "polymoe study: --config FILE is required (e.g. apps/train/configs/study-small.json)",
    );
    const missing = cli(["study", "--config", "/nonexistent.json"]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/study config \/nonexistent.json does not exist/);
  });

  it("bad flags give one clear line", () => {
    const r = cli(["smoke", "--steps", "x"]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe("polymoe smoke: --steps must be an integer >= 2, got 'x'");
  });

  it("launch validates its arguments and names the fix", () => {
    const cases: [string[], string][] = [
      [["launch", "--", "comm"], "polymoe launch: -n N is required (the number of ranks)"],
      [["launch", "-n", "0", "--", "comm"], "polymoe launch: -n must be an integer >= 1, got '0'"],
      [
        ["launch", "-n", "2"],
        "polymoe launch: nothing to run: put the subcommand after --, e.g. polymoe launch -n 2 -- comm",
      ],
      [
        ["launch", "-n", "2", "--", "trian"],
        "polymoe launch: unknown command 'trian' after -- (did you mean 'train'?). Valid commands: info, data, train, study, smoke, eval, extract, prune, score, launch, comm, plan",
      ],
      [
        ["launch", "-n", "2", "--hostfile", "/nonexistent", "--", "comm"],
        "polymoe launch: --hostfile /nonexistent: no such file",
      ],
    ];
    for (const [args, msg] of cases) {
      const r = cli(args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim()).toBe(msg);
    }
  });

  it("launch --dry-run prints the mpirun command: thread budget, exported variables, the same CLI per rank", () => {
    const r = cli(["launch", "-n", "4", "--dry-run", "--", "comm", "--mb", "1"], { POLYMOE_NUM_THREADS: "" });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /^mpirun .*--bind-to (none|core) .*-x POLYMOE_LAUNCHED .*-x POLYMOE_NUM_THREADS .*-np 4 .*apps\/cli\/src\/bin\.ts comm --mb 1\n$/,
    );
    expect(r.stderr).toMatch(/threads per rank: 1 = \d+ cores \/ 4 ranks per host/);
  });

  it("comm runs on one process without MPI and verifies its results", () => {
    const r = cli(["comm", "--mb", "1", "--iters", "2"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/comm: 1 rank \(local\)/);
    expect(r.stdout).toMatch(/allreduce .* check ok/);
    expect(r.stdout).toMatch(/alltoall .* check ok/);
  });
});

describe("polymoe plan", () => {
  it("plans taskmoe-base on 64 devices: parameters, memory per tier, and the largest model per strategy", () => {
    const r = cli([
      "plan",
      "--config",
      "apps/train/configs/taskmoe-base.json",
      "--devices",
      "64",
      "--ep",
      "8",
      "--zero",
      "2",
      "--offload",
      "host",
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/parameters \(.* in experts over 6 MoE layers/);
    expect(r.stdout).toMatch(
      /defaults used: vocabSize 32000 \(--vocab\), model.moe.decoder.router.numTasks 50/,
    );
    expect(r.stdout).toMatch(/per device {6}parameters .* GB, gradients .* GB, optimizer state 0.00 GB/);
    expect(r.stdout).toMatch(/ZeRO-2 \+ host offload +\d+ experts +[\d.]+B parameters +[\d.]+x/);
  });

  it("names bad flags and bad configs", () => {
    const r = cli([
      "plan",
      "--config",
      "apps/train/configs/taskmoe-base.json",
      "--devices",
      "6",
      "--ep",
      "4",
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--ep 4 must divide --devices 6/);
    const dir = mkdtempSync(path.join(os.tmpdir(), "plan-"));
    const file = path.join(dir, "m.json");
    writeFileSync(
      file,
      JSON.stringify({
        model: { dModel: 8, heads: 2, dFF: 8, encoderLayers: 1, decoderLayers: 1, dropot: 0 },
      }),
    );
    const bad = cli(["plan", "--config", file]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/model.dropot: unknown key \(did you mean 'dropout'\?\)/);
    expect(cli(["plan"]).stderr).toMatch(/--config FILE is required/);
    rmSync(dir, { recursive: true, force: true });
  });
});
