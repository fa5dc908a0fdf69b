// Ctrl-C on a real training process, started the way the repository's
// `pnpm polymoe` script starts the CLI: the terminal sends SIGINT to the whole
// process group, and the run must finish its step, save, and exit 0. (A
// launcher that relays signals to a child process and SIGKILLs it when the
// child does not acknowledge within milliseconds — as the tsx CLI does — loses
// the work since the last checkpoint whenever a step is running.)
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import { lastCheckpoint } from "../src/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../..");
const child = path.join(here, "fixtures", "train_child.ts");

/** The root `polymoe` script's runner, with the CLI entry replaced by the training fixture. */
function polymoeRunner(): { cmd: string; args: string[] } {
  const script: string = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).scripts.polymoe;
  const words = script.split(/\s+/);
  const entry = words.indexOf("apps/cli/src/bin.ts");
  expect(entry, `root script "polymoe" = ${script}`).toBeGreaterThan(0);
  const [first, ...rest] = words.slice(0, entry);
  const cmd = first === "node" ? process.execPath : path.join(root, "node_modules", ".bin", first as string);
  return { cmd, args: rest };
}

describe("signals (real process group, as a terminal's Ctrl-C)", () => {
  it("SIGINT mid-step under the pnpm polymoe runner: the step finishes, a checkpoint is saved, exit 0", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "signal-run-"));
    const { cmd, args } = polymoeRunner();
    const p = spawn(cmd, [...args, child, dir, "1000", "slow"], {
      cwd: root,
      detached: true, // its own process group, like a foreground job
      env: { ...process.env, POLYMOE_NUM_THREADS: "1", OMP_NUM_THREADS: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => {
      out += d;
    });
    p.stderr.on("data", (d) => {
      err += d;
    });
    const metrics = path.join(dir, "metrics.jsonl");
    const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      p.on("exit", (code, signal) => resolve({ code, signal })),
    );
    // Once two steps are logged, signal the group 150 ms into the next step.
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        const n = existsSync(metrics) ? readFileSync(metrics, "utf8").trim().split("\n").length : 0;
        if (n >= 2) {
          clearInterval(poll);
          setTimeout(() => {
            process.kill(-(p.pid as number), "SIGINT");
            resolve();
          }, 150);
        }
      }, 10);
    });
    const { code, signal } = await exit;
    expect({ code, signal }, `stdout:\n${out}\nstderr:\n${err}`).toEqual({ code: 0, signal: null });
    expect(out).toMatch(/SIGINT: finishing the current step, saving a checkpoint/);
    const steps = Number(/done (\d+)/.exec(out)?.[1]);
    expect(steps).toBeGreaterThanOrEqual(2);
    expect(steps).toBeLessThan(1000);
    expect(lastCheckpoint(dir)).toMatch(new RegExp(`_${steps}$`));
  }, 120_000);
});
