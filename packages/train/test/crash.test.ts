import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import { lastCheckpoint, SafetensorsFile } from "../src/index.js";

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "train_child.ts");
const args = (dir: string, steps: number) => [
  "--conditions=@polymoe/source",
  "--import",
  "tsx",
  child,
  dir,
  String(steps),
];
const env = { ...process.env, POLYMOE_NUM_THREADS: "1", OMP_NUM_THREADS: "1" };
const STEPS = 14;

function finalTensors(dir: string): Map<string, number[]> {
  const f = SafetensorsFile.open(path.join(lastCheckpoint(dir)!, "model.safetensors"));
  const out = new Map(f.names().map((n) => [n, Array.from(f.read(n).data)] as [string, number[]]));
  f.close();
  return out;
}

/** Starts a training child and SIGKILLs it once its metrics show `atStep`, plus a random delay. */
function killAt(dir: string, atStep: number, delayMs: number, childEnv = env): Promise<number> {
  return new Promise((resolve) => {
    const p: ChildProcess = spawn(process.execPath, args(dir, STEPS), { env: childEnv, stdio: "ignore" });
    const metrics = path.join(dir, "metrics.jsonl");
    const poll = setInterval(() => {
      const lines = existsSync(metrics) ? readFileSync(metrics, "utf8").trim().split("\n") : [];
      if (lines.length >= atStep) {
        clearInterval(poll);
        setTimeout(() => p.kill("SIGKILL"), delayMs);
      }
    }, 5);
    p.on("exit", () => {
      clearInterval(poll);
      const lines = existsSync(metrics) ? readFileSync(metrics, "utf8").trim().split("\n") : [];
      resolve(lines.length);
    });
  });
}

/** The final tensors of an uninterrupted run (computed once, shared by the tests). */
let cleanRun: Map<string, number[]> | undefined;
function uninterrupted(): Map<string, number[]> {
  if (cleanRun) return cleanRun;
  const clean = mkdtempSync(path.join(tmpdir(), "crash-clean-"));
  const done = spawnSync(process.execPath, args(clean, STEPS), { env, encoding: "utf8" });
  expect(done.status, done.stderr).toBe(0);
  cleanRun = finalTensors(clean);
  return cleanRun;
}

/** The final tensors of an uninterrupted run with paged experts (computed once). */
let cleanPaged: Map<string, number[]> | undefined;
function uninterruptedPaged(): Map<string, number[]> {
  if (cleanPaged) return cleanPaged;
  const clean = mkdtempSync(path.join(tmpdir(), "crash-paged-clean-"));
  const pagedEnv = { ...env, POLYMOE_TEST_PAGED_DIR: path.join(clean, "offload") };
  const done = spawnSync(process.execPath, args(clean, STEPS), { env: pagedEnv, encoding: "utf8" });
  expect(done.status, done.stderr).toBe(0);
  cleanPaged = finalTensors(clean);
  return cleanPaged;
}

describe("crash safety (real processes, SIGKILL)", () => {
  it("a run killed at random moments and resumed ends bitwise equal to an uninterrupted run", async () => {
    const want = uninterrupted();

    const dir = mkdtempSync(path.join(tmpdir(), "crash-killed-"));
    // Two kills at pseudo-random points (saving every step, so some land mid-save).
    const seed = Date.now();
    const kills = [3 + (seed % 4), 8 + ((seed >> 3) % 4)];
    const reached: number[] = [];
    for (const k of kills) reached.push(await killAt(dir, k, (seed >> 5) % 40));
    const resumed = spawnSync(process.execPath, args(dir, STEPS), { env, encoding: "utf8" });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`done ${STEPS} resumed`));
    const got = finalTensors(dir);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [name, values] of want)
      expect(got.get(name), `${name} (kills after ${reached.join(", ")} logged steps)`).toEqual(values);
  }, 240_000);

  it("an offloaded run (state paged through disk every step) killed mid-step/mid-write and resumed loses nothing", async () => {
    const want = uninterrupted(); // without offload: the offloaded run must end bitwise equal to it
    const dir = mkdtempSync(path.join(tmpdir(), "crash-offload-"));
    const offEnv = { ...env, POLYMOE_TEST_OFFLOAD_DIR: path.join(dir, "offload") };
    const seed = Date.now();
    const reached = await killAt(dir, 4 + (seed % 5), (seed >> 4) % 30, offEnv);
    expect(reached).toBeLessThan(STEPS);
    // The store really spilled to disk (files of the killed process, possibly a torn temporary).
    expect(readdirSync(offEnv.POLYMOE_TEST_OFFLOAD_DIR).some((f) => f.endsWith(".f32"))).toBe(true);
    const resumed = spawnSync(process.execPath, args(dir, STEPS), { env: offEnv, encoding: "utf8" });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`done ${STEPS} resumed`));
    const got = finalTensors(dir);
    for (const [name, values] of want)
      expect(got.get(name), `${name} (killed after ${reached} logged steps)`).toEqual(values);
  }, 240_000);

  it("a run with paged experts (experts through disk every step) killed and resumed ends bitwise equal", async () => {
    const want = uninterruptedPaged();
    // Paged experts are in the checkpoint under the per-expert names of resident ones.
    expect([...want.keys()].some((k) => /\.ffn\.experts\.3\.w1$/.test(k))).toBe(true);
    const dir = mkdtempSync(path.join(tmpdir(), "crash-paged-"));
    const pagedEnv = { ...env, POLYMOE_TEST_PAGED_DIR: path.join(dir, "offload") };
    const seed = Date.now();
    const reached = await killAt(dir, 4 + (seed % 5), (seed >> 4) % 30, pagedEnv);
    expect(reached).toBeLessThan(STEPS);
    expect(
      readdirSync(path.join(pagedEnv.POLYMOE_TEST_PAGED_DIR, "experts")).some((f) => f.endsWith(".f32")),
    ).toBe(true);
    const resumed = spawnSync(process.execPath, args(dir, STEPS), { env: pagedEnv, encoding: "utf8" });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`done ${STEPS} resumed`));
    const got = finalTensors(dir);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [name, values] of want)
      expect(got.get(name), `${name} (killed after ${reached} logged steps)`).toEqual(values);
  }, 240_000);
});
