// `polymoe launch -n 2 -- train ...` end to end: real mpirun, real ranks of the
// CLI, expert + data parallelism with ZeRO-1 on the offline UDHR corpus; then
// the same run resumed in one process; then a rank killed mid-training.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { mpiAvailability } from "@polymoe/parallel";
import { beforeAll, describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const cli = ["--conditions=@polymoe/source", "--import", "tsx", "apps/cli/src/bin.ts"];
const env = { ...process.env, POLYMOE_NUM_THREADS: "1", OMP_NUM_THREADS: "1", CI: "1" };
const polymoe = (args: string[]) =>
  spawnSync(process.execPath, [...cli, ...args], { cwd: root, encoding: "utf8", env, timeout: 240_000 });

function ready(): string {
  const a = mpiAvailability();
  if (!a.available) return ` [skipped: ${a.reason}]`;
  if (spawnSync("mpirun", ["--version"]).status !== 0)
    return " [skipped: mpirun not found (apt-get install -y openmpi-bin)]";
  return "";
}
const note = ready();

describe.skipIf(note !== "")(`polymoe launch -- train (2 MPI ranks, EP=2, ZeRO-1)${note}`, () => {
  const dir = mkdtempSync(path.join(tmpdir(), "polymoe-launch-train-"));
  const file = path.join(dir, "config.json");
  const runDir = path.join(dir, "run");

  beforeAll(() => {
    const corpus = path.join(dir, "corpus");
    const prep = polymoe(
      ["data", "prepare", "--preset", "quick", "--no-debian", "--udhr", "train"].concat([
        "--vocab-size",
        "1000",
        "--out",
        corpus,
      ]),
    );
    expect(prep.status, prep.stderr).toBe(0);
    const config = {
      data: { corpus, loader: { maxTokens: 512, maxSourceLength: 32, maxTargetLength: 32 } },
      model: {
        dModel: 32,
        heads: 2,
        dFF: 64,
        encoderLayers: 1,
        decoderLayers: 2,
        maxLength: 40,
        moe: {
          encoder: { layers: "all", numExperts: 4, router: { type: "topk", k: 2 } },
          decoder: { numExperts: 4, router: { type: "task", k: 2 } },
        },
      },
      train: {
        maxSteps: 4,
        logEvery: 2,
        evalEvery: 2,
        saveEvery: 2,
        optimizer: { lr: 0.001, schedule: { type: "constant", warmupSteps: 2 } },
      },
      dev: { lossSentencesPerPair: 4, bleuSentencesPerPair: 2 },
      run: { dir: runDir },
    };
    writeFileSync(file, JSON.stringify(config));
  }, 120_000);

  it("trains on 2 ranks (rank 0 logs once, each rank writes its shard); eval reads the shards; resumed in one process", () => {
    const job = polymoe(
      ["launch", "-n", "2", "--", "train", "--config", file].concat([
        "--parallel.ep",
        "2",
        "--parallel.zeroStage",
        "1",
      ]),
    );
    expect(job.status, job.stderr + job.stdout).toBe(0);
    expect(
      job.stdout.match(/^parallel: 2 ranks \(mpi\) = dp 2 x tp 1; ep 2, edp 1; ZeRO stage 1/gm),
    ).toHaveLength(1);
    expect(job.stdout.match(/^done: 4 steps/gm)).toHaveLength(1);
    expect(job.stdout).toMatch(/dev BLEU is off while experts are split over ranks/);
    expect(job.stdout).toMatch(/dev @ step 4: loss [0-9.]+/);
    const ckpt = path.join(runDir, "checkpoints", "checkpoint_0_4");
    expect(readdirSync(ckpt).sort()).toEqual(
      [0, 1]
        .flatMap((r) => [`model.rank${r}.safetensors`, `optimizer.rank${r}.safetensors`, `rank${r}.json`])
        .concat("state.json", "tokenizer.json")
        .sort(),
    );
    const train = readFileSync(path.join(runDir, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .filter((m) => m.kind === "train");
    // Rank 0 alone writes the metrics; each record says where the step's time went.
    expect(train.map((m) => m.step)).toEqual([2, 4]);
    expect(train[1].comm.allToAllShare).toBeGreaterThan(0);

    // polymoe eval reads the sharded checkpoint in one process.
    const evalDir = path.join(dir, "eval");
    const ev = polymoe(
      ["eval", "--checkpoint", ckpt, "--split", "dev", "--max-sentences", "1", "--out", evalDir].concat([
        "--json",
      ]),
    );
    expect(ev.status, ev.stderr + ev.stdout).toBe(0);
    expect(existsSync(path.join(evalDir, "report.json"))).toBe(true);

    const one = polymoe(["train", "--config", file, "--train.maxSteps", "6"]);
    expect(one.status, one.stderr + one.stdout).toBe(0);
    expect(one.stdout).toMatch(/checkpoint was written by 2 data-parallel ranks, this run has 1/);
    expect(one.stdout).toMatch(/resumed from .*checkpoint_0_4 at step 4/);
    expect(one.stdout).toMatch(/done: 6 steps \(resumed/);
    expect(existsSync(path.join(runDir, "checkpoints", "checkpoint_0_6", "model.safetensors"))).toBe(true);
  }, 300_000);

  it("Ctrl-C to the launcher: every rank finishes its step and saves its shard, the job exits 0", async () => {
    const runInt = path.join(dir, "run-int");
    const job = startLaunch(file, [
      "--parallel.ep",
      "2",
      "--fresh",
      "--train.maxSteps",
      "100000",
      "--run.dir",
      runInt,
    ]);
    await job.waitForStep(3);
    job.child.kill("SIGINT");
    const code = await job.exited;
    expect(code, job.stderr()).toBe(0);
    expect(job.stderr()).toMatch(
      /polymoe launch: SIGINT: asking every rank to stop \(SIGINT again to abort\)/,
    );
    const m = /stopped by signal: (\d+) steps.*checkpoint (\S+)/.exec(job.stdout());
    expect(m, job.stdout()).not.toBeNull();
    expect(path.basename(m![2]!)).toMatch(new RegExp(`^checkpoint_\\d+_${m![1]}$`));
    expect(readdirSync(m![2]!)).toEqual(
      expect.arrayContaining(["model.rank0.safetensors", "model.rank1.safetensors"]),
    );
  }, 300_000);

  it("a rank killed mid-training stops the whole job, non-zero, within 60 s, naming the rank", async () => {
    const job = startLaunch(file, [
      "--parallel.ep",
      "2",
      "--fresh",
      "--train.maxSteps",
      "100000",
      "--run.dir",
      path.join(dir, "run-kill"),
    ]);
    await job.waitForStep(3);
    const { tag, child, exited } = job;
    const rank1 = rankPid(tag, 1);
    expect(rank1, "rank 1's process").not.toBeNull();
    const killedAt = Date.now();
    process.kill(rank1!, "SIGKILL");
    const timeout = setTimeout(() => child.kill("SIGKILL"), 90_000);
    const code = await exited;
    clearTimeout(timeout);
    expect(Date.now() - killedAt).toBeLessThan(60_000);
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(job.stderr()).toMatch(/polymoe launch: rank 1 failed \(.*killed by signal 9/);
  }, 300_000);
});

/** `polymoe launch -n 2 -- train --config <file> ...extra` in the background, output collected. */
function startLaunch(config: string, extra: string[]) {
  const tag = `t${process.pid}${Date.now()}`;
  const child = spawn(
    process.execPath,
    [...cli, "launch", "-n", "2", "--", "train", "--config", config, ...extra],
    {
      cwd: root,
      env: { ...env, POLYMOE_FAULT_TAG: tag },
    },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    tag,
    child,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
    /** Resolves once rank 0 reports step `n` or later (plain progress lines). */
    async waitForStep(n: number) {
      const reached = () => [...stdout.matchAll(/step (\d+)\//g)].some((m) => Number(m[1]) >= n);
      const deadline = Date.now() + 120_000;
      while (!reached() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(reached(), stdout + stderr).toBe(true);
    },
  };
}

/** The pid of MPI rank `rank` of the job whose environment carries POLYMOE_FAULT_TAG=tag. */
function rankPid(tag: string, rank: number): number | null {
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    let environ: string[];
    try {
      environ = readFileSync(`/proc/${p}/environ`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (environ.includes(`POLYMOE_FAULT_TAG=${tag}`) && environ.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) {
      return Number(p);
    }
  }
  return null;
}
