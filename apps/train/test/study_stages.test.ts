import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import { canonicalJson, readDone, runStages, type Stage, stageKey } from "../src/index.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const quiet = { log: () => {}, extra: undefined };

/** Three stages: a writes a file, b reads a's output and writes one, c sums. Calls are counted. */
function pipeline(configs: { a: unknown; b: unknown; c: unknown }, calls: string[], failIn?: string) {
  const stages: Stage<undefined>[] = [
    {
      name: "a",
      config: configs.a,
      async run(dir) {
        calls.push("a");
        writeFileSync(path.join(dir, "a.txt"), "A");
        return { value: 1 };
      },
    },
    {
      name: "b",
      config: configs.b,
      async run(dir, ctx) {
        calls.push(ctx.resumed ? "b(resumed)" : "b");
        const partial = path.join(dir, "partial.txt");
        const before = existsSync(partial) ? readFileSync(partial, "utf8") : "";
        writeFileSync(partial, `${before}x`);
        if (failIn === "b") throw new Error("killed");
        return {
          value: (ctx.outputs.a as { value: number }).value + 1,
          partial: readFileSync(partial, "utf8"),
        };
      },
    },
    {
      name: "c",
      config: configs.c,
      async run(dir, ctx) {
        calls.push("c");
        writeFileSync(path.join(dir, "c.txt"), "C");
        return { value: (ctx.outputs.b as { value: number }).value * 10 };
      },
    },
  ];
  return stages;
}

describe("study stages: caching, resume, invalidation", () => {
  it("runs every stage once, then reuses them; outputs flow to later stages", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "polymoe-stages-"));
    const calls: string[] = [];
    const cfg = { a: { x: 1 }, b: { y: 2 }, c: { z: 3 } };
    const first = await runStages(dir, pipeline(cfg, calls), quiet);
    expect(calls).toEqual(["a", "b", "c"]);
    expect(first.outputs.c).toEqual({ value: 20 });
    expect(first.actions).toEqual({ a: "run", b: "run", c: "run" });
    // The done marker holds the chained key.
    const keyA = stageKey("a", cfg.a, "");
    const keyB = stageKey("b", cfg.b, keyA);
    expect(readDone(dir, "a")?.key).toBe(keyA);
    expect(readDone(dir, "b")?.key).toBe(keyB);
    expect(readDone(dir, "c")?.key).toBe(stageKey("c", cfg.c, keyB));
    // Same config again (keys written in another order): nothing runs, outputs come from the markers.
    const again = await runStages(dir, pipeline({ a: { x: 1 }, b: { y: 2 }, c: { z: 3 } }, calls), quiet);
    expect(calls).toEqual(["a", "b", "c"]);
    expect(again.actions).toEqual({ a: "cached", b: "cached", c: "cached" });
    expect(again.outputs.c).toEqual({ value: 20 });
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 1 }] })).toBe('{"a":[{"c":1,"d":2}],"b":1}');
  });

  it("a changed config reruns that stage and every later one, wiping their old outputs; earlier stages stay", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "polymoe-stages-"));
    const calls: string[] = [];
    await runStages(dir, pipeline({ a: 1, b: 1, c: 1 }, calls), quiet);
    writeFileSync(path.join(dir, "c", "stale.txt"), "old");
    calls.length = 0;
    const r = await runStages(dir, pipeline({ a: 1, b: 2, c: 1 }, calls), quiet);
    expect(calls).toEqual(["b", "c"]);
    expect(r.actions).toEqual({ a: "cached", b: "invalidated", c: "invalidated" });
    expect(readFileSync(path.join(dir, "b", "partial.txt"), "utf8")).toBe("x"); // wiped, not appended
    expect(existsSync(path.join(dir, "c", "stale.txt"))).toBe(false);
    // Only the last stage's config changed: only it reruns.
    calls.length = 0;
    await runStages(dir, pipeline({ a: 1, b: 2, c: 9 }, calls), quiet);
    expect(calls).toEqual(["c"]);
  });

  it("a stage that died mid-way resumes in place (its partial work kept); --until stops early", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "polymoe-stages-"));
    const calls: string[] = [];
    await expect(runStages(dir, pipeline({ a: 1, b: 1, c: 1 }, calls, "b"), quiet)).rejects.toThrow("killed");
    expect(readDone(dir, "a")).toBeDefined();
    expect(readDone(dir, "b")).toBeUndefined();
    expect(existsSync(path.join(dir, "stages", "b.started.json"))).toBe(true);
    calls.length = 0;
    const r = await runStages(dir, pipeline({ a: 1, b: 1, c: 1 }, calls), { ...quiet, until: "b" });
    expect(calls).toEqual(["b(resumed)"]);
    expect(r.actions).toEqual({ a: "cached", b: "resume", c: "skipped" });
    expect((r.outputs.b as { partial: string }).partial).toBe("xx");
    // An unfinished stage whose config changed starts over instead.
    await expect(
      runStages(dir, pipeline({ a: 1, b: 1, c: 2 }, calls, "c-never"), quiet),
    ).resolves.toBeDefined();
    const dir2 = mkdtempSync(path.join(tmpdir(), "polymoe-stages-"));
    await expect(runStages(dir2, pipeline({ a: 1, b: 1, c: 1 }, [], "b"), quiet)).rejects.toThrow("killed");
    const calls2: string[] = [];
    const r2 = await runStages(dir2, pipeline({ a: 1, b: 5, c: 1 }, calls2), quiet);
    expect(calls2).toEqual(["b", "c"]);
    expect(r2.actions.b).toBe("invalidated");
    expect((r2.outputs.b as { partial: string }).partial).toBe("x");
  });

  it("refuses duplicate or unsafe stage names and an unknown --until", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "polymoe-stages-"));
    const s = pipeline({ a: 1, b: 1, c: 1 }, []);
    await expect(runStages(dir, [s[0] as Stage<undefined>, s[0] as Stage<undefined>], quiet)).rejects.toThrow(
      "stage 'a' is listed twice",
    );
    await expect(runStages(dir, [{ ...(s[0] as Stage<undefined>), name: "../x" }], quiet)).rejects.toThrow(
      "not a path-safe word",
    );
    await expect(runStages(dir, s, { ...quiet, until: "z" })).rejects.toThrow(
      "--until 'z': no such stage; stages are a, b, c",
    );
  });

  it("a process killed (SIGKILL) in the middle of a stage continues from there when run again", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "polymoe-stages-kill-"));
    const script = path.join(dir, "child.mts");
    const stagesModule = path.join(root, "apps/train/src/study/stages.ts");
    writeFileSync(
      script,
      `import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { runStages } from ${JSON.stringify(stagesModule)};
const dir = process.argv[2];
await runStages(dir, [
  { name: "first", config: 1, run: async (d) => { writeFileSync(path.join(d, "out"), "1"); return 1; } },
  { name: "long", config: 2, run: async (d, ctx) => {
      appendFileSync(path.join(dir, "attempts"), ctx.resumed ? "resumed\\n" : "fresh\\n");
      for (let i = 0; i < 1000; i++) {
        const f = path.join(d, "step-" + i);
        if (existsSync(f)) continue;
        writeFileSync(f, "");
        if (i === 3 && !ctx.resumed) await new Promise((r) => setTimeout(r, 60_000));
        if (i === 5) break;
      }
      return 2;
  } },
], { log: () => {}, extra: undefined });
`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", "--conditions=@polymoe/source", script, dir], {
      cwd: root,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (b) => {
      stderr += String(b);
    });
    const exited = new Promise((r) => child.once("exit", r));
    const deadline = Date.now() + 30_000;
    while (!existsSync(path.join(dir, "long", "step-3")) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(child.exitCode, stderr).toBeNull(); // still running, inside the stage
    child.kill("SIGKILL");
    await exited;
    expect(readDone(dir, "first")?.outputs).toBe(1);
    expect(readDone(dir, "long")).toBeUndefined();
    // Run again in this process with the same stages: first is reused, long resumes at step 4.
    const calls: string[] = [];
    const r = await runStages(
      dir,
      [
        { name: "first", config: 1, run: async () => calls.push("first") },
        {
          name: "long",
          config: 2,
          run: async (d, ctx) => {
            calls.push(ctx.resumed ? "long(resumed)" : "long");
            return ["step-0", "step-3", "step-4"].map((f) => existsSync(path.join(d, f)));
          },
        },
      ],
      quiet,
    );
    expect(calls).toEqual(["long(resumed)"]);
    expect(r.outputs.long).toEqual([true, true, false]);
    expect(readFileSync(path.join(dir, "attempts"), "utf8")).toBe("fresh\n");
  }, 60_000);
});
