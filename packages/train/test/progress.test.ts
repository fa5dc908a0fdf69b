import { describe, expect, it } from "vitest";

import { Progress } from "../src/index.js";

function capture(tty: boolean, every = 5) {
  const lines: string[] = [];
  const out = { write: (s: string) => lines.push(s) > 0 } as unknown as NodeJS.WriteStream;
  return { lines, progress: new Progress(out, tty, every) };
}

const fields = { total: 100, loss: 2.5, tokensPerSecond: 1234, droppedPercent: 1.5, lr: 1e-3 };

describe("Progress", () => {
  it("ETA counts this session's steps only (a run resumed at step 50)", () => {
    const { lines, progress } = capture(false, 0);
    // resumed at 50; 10 steps in 20 s -> 2 s/step, 40 steps left -> 1m20s
    progress.update({ ...fields, step: 60, seconds: 20, stepsDone: 10 });
    expect(lines[0]).toBe("step 60/100 loss 2.500 | 1.2k tok/s | dropped 1.5% | lr 1.00e-3 | ETA 1m20s\n");
  });
  it("without a TTY, writes at most one line per interval, and always the last step", () => {
    const { lines, progress } = capture(false, 5);
    for (let s = 1; s <= 100; s++) progress.update({ ...fields, step: s, seconds: s * 0.5, stepsDone: s });
    // lines at 0.5 s (step 1), then every 5 s (steps 11, 21, ..., 91), then step 100
    expect(lines.map((l) => l.split(" ")[1])).toEqual([
      "1/100",
      "11/100",
      "21/100",
      "31/100",
      "41/100",
      "51/100",
      "61/100",
      "71/100",
      "81/100",
      "91/100",
      "100/100",
    ]);
  });
  it("on a TTY, redraws one bar in place", () => {
    const { lines, progress } = capture(true);
    progress.update({ ...fields, step: 25, seconds: 10, stepsDone: 25 });
    progress.done();
    expect(lines[0]).toMatch(/^\rstep 25\/100 \[=====> {18}\] loss 2\.500/);
    expect(lines.at(-1)).toBe("\n");
  });
});
