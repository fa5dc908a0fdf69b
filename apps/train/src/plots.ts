import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { lineChart } from "@polymoe/plot";

interface MetricLine {
  kind: string;
  step: number;
  loss?: number;
  nll?: number;
  bleu?: number;
}

/**
 * Plots of a run from its metrics.jsonl: loss.svg (train loss and dev loss
 * against step) and, when dev BLEU was measured, bleu.svg. Returns the files written.
 */
export function writeTrainingPlots(runDir: string): string[] {
  const file = path.join(runDir, "metrics.jsonl");
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as MetricLine);
  const train = lines.filter((l) => l.kind === "train");
  const dev = lines.filter((l) => l.kind === "dev");
  const dir = path.join(runDir, "plots");
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const pts = (ls: MetricLine[], k: "loss" | "nll" | "bleu") =>
    ls.filter((l) => typeof l[k] === "number").map((l) => [l.step, l[k] as number] as [number, number]);
  writeFileSync(
    path.join(dir, "loss.svg"),
    lineChart({
      title: `Loss — ${path.basename(path.resolve(runDir))}`,
      xLabel: "step",
      yLabel: "loss per target token",
      series: [
        { name: "train (label-smoothed)", points: pts(train, "loss") },
        { name: "dev (label-smoothed)", points: pts(dev, "loss") },
        { name: "dev NLL", points: pts(dev, "nll") },
      ],
    }),
  );
  written.push(path.join(dir, "loss.svg"));
  if (dev.some((l) => typeof l.bleu === "number")) {
    writeFileSync(
      path.join(dir, "bleu.svg"),
      lineChart({
        title: "Dev BLEU (mean over directions)",
        xLabel: "step",
        yLabel: "BLEU",
        series: [{ name: "dev BLEU", points: pts(dev, "bleu") }],
      }),
    );
    written.push(path.join(dir, "bleu.svg"));
  }
  return written;
}
