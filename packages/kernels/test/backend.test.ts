import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { poolCapacityBytes } from "../src/backend.js";
import { NATIVE_BACKEND_NAME, resolveNumThreads, setNumThreads, useBackend } from "../src/index.js";
import { nativeAvailable, nativeInfo, skipNote } from "./helpers.js";

const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const child = path.join(pkgDir, "test", "fixtures", "child.ts");

/** Runs a snippet in a fresh Node process (its own tfjs and addon state). */
function runChild(code: string, env: Record<string, string>) {
  return spawnSync(process.execPath, ["--conditions=@polymoe/source", "--import", "tsx", child, code], {
    cwd: pkgDir,
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
}

describe("backend selection", () => {
  it("rejects an unknown choice listing the valid ones", async () => {
    await expect(useBackend("gpu" as never)).rejects.toThrow(
      /unknown backend 'gpu'; valid: auto, native, cpu, wasm, tensorflow/,
    );
  });

  it("'tensorflow' without tfjs-node installed says which package to add", async () => {
    await expect(useBackend("tensorflow")).rejects.toThrow(
      /@tensorflow\/tfjs-node-gpu \(CUDA\) or @tensorflow\/tfjs-node/,
    );
  });

  it("'cpu' selects the stock backend", async () => {
    const r = await useBackend("cpu");
    expect(r.backend).toBe("cpu");
    expect(tf.getBackend()).toBe("cpu");
  });

  it.skipIf(!nativeAvailable)(`'auto' picks the native backend when the addon loads${skipNote}`, async () => {
    const r = await useBackend("auto");
    expect(r.backend).toBe(NATIVE_BACKEND_NAME);
    expect(r.fallbackReason).toBeUndefined();
    expect(r.detail).toMatch(/thread/);
  });

  it("with the addon missing, 'auto' falls back to cpu and warns exactly once; 'native' fails clearly", () => {
    const res = runChild(
      `const a = await k.useBackend("auto"); const b = await k.useBackend("auto");
       let nativeErr = ""; try { await k.useBackend("native"); } catch (e) { nativeErr = e.message; }
       const t = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2]));
       console.log(JSON.stringify({ a: a.backend, b: b.backend, reason: a.fallbackReason, nativeErr, sum: tf.sum(t).dataSync()[0] }));`,
      { POLYMOE_KERNELS_ADDON: "/nonexistent/polymoe_kernels.node" },
    );
    expect(res.status).toBe(0);
    const out = JSON.parse(res.stdout.trim().split("\n").pop()!);
    expect(out.a).toBe("cpu");
    expect(out.b).toBe("cpu");
    expect(out.sum).toBe(12);
    expect(out.reason).toMatch(/not found at \/nonexistent/);
    expect(out.nativeErr).toMatch(/backend 'native' is unavailable: the native addon was not found/);
    const warnings = res.stderr.split("\n").filter((l) => l.includes("POLYMOE_NATIVE_UNAVAILABLE"));
    expect(warnings).toHaveLength(1);
    expect(res.stderr).toMatch(/stock tfjs cpu backend, which is much slower/);
    // The cpu backend's own "install tfjs-node" hint is not printed on top.
    expect(res.stderr).not.toMatch(/Hi, looks like you are running/);
  });
});

describe("threads", () => {
  it("resolve from POLYMOE_NUM_THREADS, then OMP/OPENBLAS_NUM_THREADS, then the core count", () => {
    expect(resolveNumThreads({ POLYMOE_NUM_THREADS: "3", OMP_NUM_THREADS: "5" })).toBe(3);
    expect(resolveNumThreads({ OMP_NUM_THREADS: "5" })).toBe(5);
    expect(resolveNumThreads({ OPENBLAS_NUM_THREADS: "2" })).toBe(2);
    expect(resolveNumThreads({ POLYMOE_NUM_THREADS: "zero" })).toBeGreaterThanOrEqual(1);
  });

  it.skipIf(!nativeAvailable)(`the native code honours the setting${skipNote}`, () => {
    const res = runChild(`await k.useBackend("native"); console.log(JSON.stringify(k.nativeInfo()));`, {
      POLYMOE_NUM_THREADS: "1",
    });
    expect(res.status).toBe(0);
    expect(JSON.parse(res.stdout.trim()).threads).toBe(1);
    setNumThreads(2);
    expect((nativeInfo() as { threads: number }).threads).toBe(2);
    setNumThreads(1);
    expect(() => setNumThreads(0)).toThrow(/positive integer/);
  });
});

describe("output buffer pool capacity", () => {
  const GiB = 1024 ** 3;
  it("defaults to an eighth of the machine's memory, shared by the MPI ranks on the host", () => {
    expect(poolCapacityBytes({}, 24 * GiB)).toBe(3 * GiB);
    expect(poolCapacityBytes({ OMPI_COMM_WORLD_LOCAL_SIZE: "4" }, 24 * GiB)).toBe(0.75 * GiB);
  });
  it("POLYMOE_POOL_MB overrides it; 0 disables reuse; junk falls back to the default", () => {
    expect(poolCapacityBytes({ POLYMOE_POOL_MB: "512" }, 24 * GiB)).toBe(512 * 1024 * 1024);
    expect(poolCapacityBytes({ POLYMOE_POOL_MB: "0" }, 24 * GiB)).toBe(0);
    expect(poolCapacityBytes({ POLYMOE_POOL_MB: "lots" }, 24 * GiB)).toBe(3 * GiB);
  });
});
