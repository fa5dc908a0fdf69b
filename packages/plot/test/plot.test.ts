import { describe, expect, it } from "vitest";

import { barChart, heatmap, lineChart, ticks } from "../src/index.js";

const wellFormed = (svg: string) => {
  expect(svg.startsWith("<svg")).toBe(true);
  expect(svg.trim().endsWith("</svg>")).toBe(true);
  expect((svg.match(/</g) ?? []).length).toBe((svg.match(/>/g) ?? []).length);
};

describe("SVG charts", () => {
  it("nice ticks", () => {
    expect(ticks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(ticks(0.13, 0.92)).toEqual([0.2, 0.4, 0.6, 0.8]);
    expect(ticks(3, 3)).toEqual([3]);
  });

  it("line chart: one path per series, escaped labels, log scale skips non-positive points", () => {
    const svg = lineChart({
      title: "loss <dev & train>",
      xLabel: "step",
      yLabel: "loss",
      logY: true,
      series: [
        {
          name: "train",
          points: [
            [0, 9],
            [100, 4],
            [200, 2.5],
          ],
        },
        {
          name: "dev",
          points: [
            [100, 5],
            [200, 0],
            [300, Number.NaN],
          ],
        },
      ],
    });
    wellFormed(svg);
    expect((svg.match(/<path /g) ?? []).length).toBe(2);
    expect(svg).toContain("loss &lt;dev &amp; train&gt;");
    expect(svg).toContain("(log)");
  });

  it("bar chart: one rect per finite value (plus frame)", () => {
    const svg = barChart({
      title: "BLEU",
      yLabel: "BLEU",
      categories: ["de", "fr", "ja"],
      series: [
        { name: "dense", values: [10, 20, Number.NaN] },
        { name: "taskmoe", values: [12, 21, 5] },
      ],
    });
    wellFormed(svg);
    expect((svg.match(/<title>/g) ?? []).length).toBe(5);
  });

  it("heatmap: one cell per value with tooltips", () => {
    const svg = heatmap({
      title: "usage",
      rows: ["de", "fr"],
      columns: ["e0", "e1", "e2"],
      values: [
        [1, 0, 3],
        [2, 2, 2],
      ],
      xLabel: "expert",
      yLabel: "language",
    });
    wellFormed(svg);
    expect((svg.match(/<title>/g) ?? []).length).toBe(6);
    expect(svg).toContain("de / e2: 3");
  });
});
