// Small SVG charts, written as strings: no DOM, no dependencies. Every chart
// has a title, labelled axes and a legend, and escapes its text.

const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const fmt = (v: number) =>
  Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0)
    ? v.toExponential(1)
    : Number(v.toPrecision(3)).toString();

/** Round "nice" tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, target = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi === lo) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function header(f: Frame, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${f.width}" height="${f.height}" fill="white"/>`,
    `<text x="${f.width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
}

function legend(f: Frame, names: readonly string[]): string[] {
  return names.map((n, i) => {
    const y = f.top + 6 + i * 16;
    const x = f.width - f.right + 10;
    return `<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/><text x="${x + 14}" y="${y}">${esc(n)}</text>`;
  });
}

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

/** A line chart (e.g. loss against step), one polyline per series. */
export function lineChart(opts: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  logY?: boolean;
}): string {
  const legendWidth = Math.max(0, ...opts.series.map((s) => s.name.length)) * 7 + 30;
  const f: Frame = {
    width: 720 + legendWidth,
    height: 420,
    left: 70,
    right: legendWidth + 10,
    top: 30,
    bottom: 50,
  };
  const pts = opts.series
    .flatMap((s) => s.points)
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logY || y > 0));
  const out = header(f, opts.title);
  if (pts.length === 0) {
    out.push(`<text x="${f.width / 2}" y="${f.height / 2}" text-anchor="middle">no data</text></svg>`);
    return out.join("\n");
  }
  const ty = (y: number) => (opts.logY ? Math.log10(y) : y);
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => ty(p[1]));
  const [x0, x1] = [
    Math.min(...xs),
    Math.max(...xs) === Math.min(...xs) ? Math.min(...xs) + 1 : Math.max(...xs),
  ];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const W = f.width - f.left - f.right;
  const H = f.height - f.top - f.bottom;
  const sx = (x: number) => f.left + ((x - x0) / (x1 - x0)) * W;
  const sy = (y: number) => f.top + H - ((ty(y) - y0) / (y1 - y0)) * H;
  out.push(`<rect x="${f.left}" y="${f.top}" width="${W}" height="${H}" fill="none" stroke="#999"/>`);
  for (const t of ticks(x0, x1)) {
    out.push(`<line x1="${sx(t)}" y1="${f.top + H}" x2="${sx(t)}" y2="${f.top + H + 4}" stroke="#333"/>`);
    out.push(`<text x="${sx(t)}" y="${f.top + H + 17}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of ticks(y0, y1)) {
    const v = opts.logY ? 10 ** t : t;
    const y = f.top + H - ((t - y0) / (y1 - y0)) * H;
    out.push(`<line x1="${f.left}" y1="${y}" x2="${f.left + W}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${f.left - 6}" y="${y + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  out.push(
    `<text x="${f.left + W / 2}" y="${f.height - 12}" text-anchor="middle">${esc(opts.xLabel)}</text>`,
  );
  out.push(
    `<text x="16" y="${f.top + H / 2}" text-anchor="middle" transform="rotate(-90 16 ${f.top + H / 2})">${esc(opts.yLabel)}${opts.logY ? " (log)" : ""}</text>`,
  );
  opts.series.forEach((s, i) => {
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logY || y > 0));
    if (p.length === 0) return;
    const d = p.map(([x, y], j) => `${j === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    out.push(`<path d="${d}" fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="1.8"/>`);
    if (p.length <= 40) {
      for (const [x, y] of p)
        out.push(
          `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${PALETTE[i % PALETTE.length]}"/>`,
        );
    }
  });
  out.push(
    ...legend(
      f,
      opts.series.map((s) => s.name),
    ),
    "</svg>",
  );
  return out.join("\n");
}

/** Grouped bars: one group per category (e.g. language), one bar per series (e.g. model). */
export function barChart(opts: {
  title: string;
  yLabel: string;
  categories: readonly string[];
  series: readonly { name: string; values: readonly number[] }[];
}): string {
  const legendWidth = Math.max(0, ...opts.series.map((s) => s.name.length)) * 7 + 30;
  const groupWidth = Math.max(24, opts.series.length * 12 + 10);
  const f: Frame = {
    width: Math.max(480, 70 + opts.categories.length * groupWidth + legendWidth + 20),
    height: 420,
    left: 60,
    right: legendWidth + 10,
    top: 30,
    bottom: 70,
  };
  const out = header(f, opts.title);
  const vals = opts.series.flatMap((s) => s.values).filter(Number.isFinite);
  const y1 = Math.max(1e-9, ...vals) * 1.08;
  const y0 = Math.min(0, ...vals);
  const W = f.width - f.left - f.right;
  const H = f.height - f.top - f.bottom;
  const sy = (v: number) => f.top + H - ((v - y0) / (y1 - y0)) * H;
  out.push(`<rect x="${f.left}" y="${f.top}" width="${W}" height="${H}" fill="none" stroke="#999"/>`);
  for (const t of ticks(y0, y1)) {
    out.push(`<line x1="${f.left}" y1="${sy(t)}" x2="${f.left + W}" y2="${sy(t)}" stroke="#eee"/>`);
    out.push(`<text x="${f.left - 6}" y="${sy(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  const gw = W / Math.max(1, opts.categories.length);
  const bw = Math.max(2, (gw - 6) / Math.max(1, opts.series.length));
  opts.categories.forEach((c, ci) => {
    const gx = f.left + ci * gw + 3;
    opts.series.forEach((s, si) => {
      const v = s.values[ci] as number;
      if (!Number.isFinite(v)) return;
      const y = sy(Math.max(v, y0));
      const base = sy(Math.max(0, y0));
      out.push(
        `<rect x="${(gx + si * bw).toFixed(1)}" y="${Math.min(y, base).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${Math.abs(base - y).toFixed(1)}" fill="${PALETTE[si % PALETTE.length]}"><title>${esc(`${s.name} ${c}: ${fmt(v)}`)}</title></rect>`,
      );
    });
    const cx = gx + (gw - 6) / 2;
    out.push(
      `<text x="${cx}" y="${f.top + H + 14}" text-anchor="end" transform="rotate(-45 ${cx} ${f.top + H + 14})">${esc(c)}</text>`,
    );
  });
  out.push(
    `<text x="16" y="${f.top + H / 2}" text-anchor="middle" transform="rotate(-90 16 ${f.top + H / 2})">${esc(opts.yLabel)}</text>`,
  );
  out.push(
    ...legend(
      f,
      opts.series.map((s) => s.name),
    ),
    "</svg>",
  );
  return out.join("\n");
}

/** A heatmap of rows x columns (e.g. languages x experts); cells shaded by value, annotated when small. */
export function heatmap(opts: {
  title: string;
  rows: readonly string[];
  columns: readonly string[];
  values: readonly (readonly number[])[];
  xLabel: string;
  yLabel: string;
}): string {
  const cell = Math.max(10, Math.min(32, Math.floor(640 / Math.max(1, opts.columns.length))));
  const rowLabel = Math.max(3, ...opts.rows.map((r) => r.length)) * 7 + 10;
  const f: Frame = {
    width: rowLabel + 40 + opts.columns.length * cell + 90,
    height: 60 + opts.rows.length * cell + 60,
    left: rowLabel + 30,
    right: 90,
    top: 40,
    bottom: 60,
  };
  const out = header(f, opts.title);
  const flat = opts.values.flat().filter(Number.isFinite);
  const max = Math.max(1e-12, ...flat);
  const shade = (v: number) => {
    const t = Math.max(0, Math.min(1, v / max));
    const c = (a: number, b: number) => Math.round(a + (b - a) * t);
    return `rgb(${c(247, 8)},${c(251, 48)},${c(255, 107)})`;
  };
  opts.rows.forEach((r, i) => {
    out.push(
      `<text x="${f.left - 6}" y="${f.top + i * cell + cell / 2 + 4}" text-anchor="end">${esc(r)}</text>`,
    );
    opts.columns.forEach((_, j) => {
      const v = opts.values[i]?.[j] ?? Number.NaN;
      out.push(
        `<rect x="${f.left + j * cell}" y="${f.top + i * cell}" width="${cell}" height="${cell}" fill="${Number.isFinite(v) ? shade(v) : "#ddd"}" stroke="white"><title>${esc(`${r} / ${opts.columns[j]}: ${fmt(v)}`)}</title></rect>`,
      );
      if (cell >= 24 && Number.isFinite(v)) {
        out.push(
          `<text x="${f.left + j * cell + cell / 2}" y="${f.top + i * cell + cell / 2 + 4}" text-anchor="middle" font-size="9" fill="${v / max > 0.5 ? "white" : "black"}">${fmt(v)}</text>`,
        );
      }
    });
  });
  const every = Math.max(1, Math.ceil(opts.columns.length / 32));
  opts.columns.forEach((c, j) => {
    if (j % every === 0)
      out.push(
        `<text x="${f.left + j * cell + cell / 2}" y="${f.top + opts.rows.length * cell + 14}" text-anchor="middle" font-size="10">${esc(c)}</text>`,
      );
  });
  out.push(
    `<text x="${f.left + (opts.columns.length * cell) / 2}" y="${f.height - 14}" text-anchor="middle">${esc(opts.xLabel)}</text>`,
  );
  out.push(
    `<text x="14" y="${f.top + (opts.rows.length * cell) / 2}" text-anchor="middle" transform="rotate(-90 14 ${f.top + (opts.rows.length * cell) / 2})">${esc(opts.yLabel)}</text>`,
  );
  const lx = f.width - f.right + 20;
  for (let k = 0; k <= 4; k++) {
    const v = (max * (4 - k)) / 4;
    out.push(
      `<rect x="${lx}" y="${f.top + k * 18}" width="14" height="14" fill="${shade(v)}" stroke="#999"/><text x="${lx + 20}" y="${f.top + k * 18 + 11}">${fmt(v)}</text>`,
    );
  }
  out.push("</svg>");
  return out.join("\n");
}
