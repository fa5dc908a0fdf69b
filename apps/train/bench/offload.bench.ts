// pnpm bench:offload — under one host-memory budget, the largest taskmoe-family
// model that trains without offload and with its optimizer state offloaded to
// disk (@polymoe/offload), found by actually training each candidate for a few
// steps in a fresh process and checking its peak RSS against the budget.
//
//   pnpm bench:offload [--budget-gb 1.25] [--steps 2] [--reserve-gb 0.35]
//
// --reserve-gb is offload.reserveGB: host memory kept for activations and the
// runtime (measured here at ~0.3 GB for this family: node, tfjs, the addon).
//
// POLYMOE_POOL_MB (default here 128) sizes the native buffer pool in both modes.
// Candidates grow the experts per MoE layer (8, 16, 24, ...) until one fails.
// Last line: one JSON object with max_params_no_offload, max_params_offload,
// tokens_per_s_offload, peak_rss_gb and budget_gb.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    "budget-gb": { type: "string", default: "1.25" },
    steps: { type: "string", default: "2" },
    "reserve-gb": { type: "string", default: "0.35" },
  },
});
const budget = Number(args["budget-gb"]);
const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "offload_child.ts");
const LADDER = [8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 256];

interface Result {
  experts: number;
  offload: boolean;
  params: number;
  ok: boolean;
  peakRssGB: number;
  tokensPerS?: number;
  stepMs?: number;
  diskReadMBPerStep?: number;
  diskWrittenMBPerStep?: number;
  error?: string;
}

function measure(experts: number, offload: boolean): Result {
  const argv = [
    "--conditions=@polymoe/source",
    "--import",
    "tsx",
    child,
    "--experts",
    String(experts),
    "--budget-gb",
    String(budget),
    "--steps",
    args.steps as string,
    "--reserve-gb",
    args["reserve-gb"] as string,
    ...(offload ? ["--offload"] : []),
  ];
  // The native backend's pool of idle output buffers counts against the budget like
  // everything else: the same 128 MB for both modes (its default is an eighth of RAM).
  const env = { ...process.env, POLYMOE_POOL_MB: process.env.POLYMOE_POOL_MB ?? "128" };
  const r = spawnSync(process.execPath, argv, { encoding: "utf8", maxBuffer: 1 << 24, env });
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line) as Result;
  } catch {
    return {
      experts,
      offload,
      params: 0,
      ok: false,
      peakRssGB: 0,
      error: `child failed: ${r.stderr.slice(-400)}`,
    };
  }
}

const fmtM = (n: number) => `${(n / 1e6).toFixed(1)}M`;
console.log(
  `bench:offload — host-memory budget ${budget} GB; taskmoe family (d 256, 2+2 layers, MoE every other layer, expert dFF 1024)`,
);
console.log(
  `${"mode".padEnd(12)}${"experts".padStart(8)}${"params".padStart(10)}${"peak RSS".padStart(11)}${"tok/s".padStart(8)}${"step ms".padStart(9)}${"disk r/w MB/step".padStart(19)}  result`,
);
const best: Record<"none" | "offload", Result | undefined> = { none: undefined, offload: undefined };
for (const offload of [false, true]) {
  const mode = offload ? "offload" : "none";
  for (const experts of LADDER) {
    const r = measure(experts, offload);
    const disk =
      r.diskReadMBPerStep !== undefined
        ? `${r.diskReadMBPerStep.toFixed(0)}/${(r.diskWrittenMBPerStep ?? 0).toFixed(0)}`
        : "-";
    console.log(
      `${(offload ? "offload" : "no offload").padEnd(12)}${String(experts).padStart(8)}${fmtM(r.params).padStart(10)}` +
        `${`${r.peakRssGB.toFixed(3)} GB`.padStart(11)}${(r.tokensPerS?.toFixed(0) ?? "-").padStart(8)}` +
        `${(r.stepMs?.toFixed(0) ?? "-").padStart(9)}${disk.padStart(19)}  ${r.ok ? "ok" : `FAIL: ${(r.error ?? "").slice(0, 160)}`}`,
    );
    if (!r.ok) break;
    best[mode] = r;
  }
}
const none = best.none;
const off = best.offload;
console.log("");
if (none && off) {
  console.log(
    `largest trainable: ${fmtM(none.params)} parameters without offload, ${fmtM(off.params)} with it ` +
      `(${(off.params / none.params).toFixed(2)}x); throughput ${none.tokensPerS?.toFixed(0)} vs ${off.tokensPerS?.toFixed(0)} tokens/s`,
  );
}
console.log(
  JSON.stringify({
    budget_gb: budget,
    max_params_no_offload: none?.params ?? 0,
    max_params_offload: off?.params ?? 0,
    ratio: none && off ? +(off.params / none.params).toFixed(2) : null,
    tokens_per_s_no_offload: none ? +(none.tokensPerS ?? 0).toFixed(1) : null,
    tokens_per_s_offload: off ? +(off.tokensPerS ?? 0).toFixed(1) : null,
    peak_rss_gb: off ? +off.peakRssGB.toFixed(3) : null,
    peak_rss_gb_no_offload: none ? +none.peakRssGB.toFixed(3) : null,
  }),
);
