// pnpm bench:offload — under one host-memory budget, the largest taskmoe-family
// model that trains without offload, with its optimizer state offloaded
// (mode "state", experts resident), and with paged experts (mode "paged":
// expert parameters, gradients and Adam moments in @polymoe/offload's store,
// only the experts a batch routes to fetched), found by actually training
// each candidate for a few steps in a fresh process and checking its peak
// RSS against the budget.
//
//   pnpm bench:offload [--budget-gb 1.25] [--steps 3] [--reserve-gb 0.35]
//                      [--cache-gb 0.25] [--modes none,paged] [--max-experts 512]
//                      [--encoder task|token] [--expert-init eager|first-use]
//                      [--write-back sync|async]
//
// --reserve-gb is offload.reserveGB: host memory kept for activations and the
// runtime (measured here at ~0.3 GB for this family: node, tfjs, the addon);
// --cache-gb is offload.expertCacheGB and --expert-init offload.expertInit (paged
// mode; eager writes every expert's initial parameters to the store before
// training, first-use when a batch first routes to it).
//
// POLYMOE_POOL_MB (default here 128) sizes the native buffer pool in every mode.
// Candidates grow the experts per MoE layer (none/state: 8, 16, 24, ...; paged:
// 64, 128, 256, ... up to --max-experts, which bounds the run's time: each
// candidate first writes every expert's initial parameters to the store) until
// one fails. Last line: one JSON object with max_params_no_offload,
// max_params_offload (paged), tokens_per_s_offload, peak_rss_gb and budget_gb.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    "budget-gb": { type: "string", default: "1.25" },
    steps: { type: "string", default: "3" },
    "reserve-gb": { type: "string", default: "0.35" },
    "cache-gb": { type: "string", default: "0.25" },
    modes: { type: "string", default: "none,paged" },
    "max-experts": { type: "string", default: "512" },
    encoder: { type: "string", default: "task" },
    "expert-init": { type: "string", default: "eager" },
    "write-back": { type: "string", default: "sync" },
  },
});
const budget = Number(args["budget-gb"]);
const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "offload_child.ts");
const LADDER = [8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 256];
const maxExperts = Number(args["max-experts"]);
const PAGED_LADDER: number[] = [];
for (let e = 64; e <= maxExperts; e *= 2) PAGED_LADDER.push(e);
type Mode = "none" | "state" | "paged";
const modes = (args.modes as string).split(",") as Mode[];
for (const m of modes) {
  if (!["none", "state", "paged"].includes(m))
    throw new Error(`--modes: unknown mode ${m}; valid: none, state, paged`);
}

interface Result {
  experts: number;
  offload: boolean;
  paged?: boolean;
  params: number;
  residentParams?: number;
  initS?: number;
  expertsPerStep?: number;
  ok: boolean;
  peakRssGB: number;
  tokensPerS?: number;
  stepMs?: number;
  diskReadMBPerStep?: number;
  diskWrittenMBPerStep?: number;
  error?: string;
}

function measure(experts: number, mode: Mode): Result {
  const offload = mode !== "none";
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
    "--cache-gb",
    args["cache-gb"] as string,
    "--encoder",
    args.encoder as string,
    "--expert-init",
    args["expert-init"] as string,
    "--write-back",
    args["write-back"] as string,
    ...(mode === "state" ? ["--offload"] : mode === "paged" ? ["--paged"] : []),
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
  `bench:offload — host-memory budget ${budget} GB; taskmoe family (d 256, 2+2 layers, MoE every other layer, ` +
    `expert dFF 1024, top-2 of 8 tasks in the decoder, ${args.encoder === "token" ? "top-2 token" : "top-2 task"} routing in the encoder)`,
);
console.log(
  `${"mode".padEnd(12)}${"experts".padStart(8)}${"params".padStart(10)}${"resident".padStart(10)}${"peak RSS".padStart(11)}${"tok/s".padStart(8)}${"step ms".padStart(9)}${"disk r/w MB/step".padStart(19)}${"init s".padStart(8)}  result`,
);
const best: Record<Mode, Result | undefined> = { none: undefined, state: undefined, paged: undefined };
for (const mode of modes) {
  for (const experts of mode === "paged" ? PAGED_LADDER : LADDER) {
    const r = measure(experts, mode);
    const disk =
      r.diskReadMBPerStep !== undefined
        ? `${r.diskReadMBPerStep.toFixed(0)}/${(r.diskWrittenMBPerStep ?? 0).toFixed(0)}`
        : "-";
    const label = mode === "none" ? "no offload" : mode === "state" ? "Adam state" : "paged";
    console.log(
      `${label.padEnd(12)}${String(experts).padStart(8)}${fmtM(r.params).padStart(10)}` +
        `${(r.residentParams !== undefined ? fmtM(r.residentParams) : "-").padStart(10)}` +
        `${`${r.peakRssGB.toFixed(3)} GB`.padStart(11)}${(r.tokensPerS?.toFixed(0) ?? "-").padStart(8)}` +
        `${(r.stepMs?.toFixed(0) ?? "-").padStart(9)}${disk.padStart(19)}${(r.initS?.toFixed(0) ?? "-").padStart(8)}` +
        `  ${r.ok ? `ok${r.expertsPerStep !== undefined ? ` (${r.expertsPerStep} experts fetched/step)` : ""}` : `FAIL: ${(r.error ?? "").slice(0, 160)}`}`,
    );
    if (!r.ok) break;
    best[mode] = r;
  }
}
const none = best.none;
const state = best.state;
const off = best.paged ?? best.state;
const lastPaged = PAGED_LADDER.at(-1);
console.log("");
if (none && state) {
  console.log(
    `optimizer state offloaded, experts resident: ${fmtM(state.params)} parameters vs ${fmtM(none.params)} ` +
      `(${(state.params / none.params).toFixed(2)}x)`,
  );
}
if (none && best.paged) {
  const capped = best.paged.experts === lastPaged;
  console.log(
    `largest trainable: ${fmtM(none.params)} parameters without offload, ${fmtM(best.paged.params)} with paged experts ` +
      `(${(best.paged.params / none.params).toFixed(2)}x${capped ? `; the ladder's cap --max-experts ${maxExperts}, not a failure, ended it` : ""}); ` +
      `throughput ${none.tokensPerS?.toFixed(0)} vs ${best.paged.tokensPerS?.toFixed(0)} tokens/s`,
  );
}
console.log(
  JSON.stringify({
    budget_gb: budget,
    max_params_no_offload: none?.params ?? 0,
    max_params_offload: off?.params ?? 0,
    ratio: none && off ? +(off.params / none.params).toFixed(2) : null,
    offload_mode: best.paged ? "paged" : best.state ? "state" : null,
    capped_by_max_experts: best.paged ? best.paged.experts === lastPaged : null,
    max_params_state_offload: state?.params ?? null,
    tokens_per_s_no_offload: none ? +(none.tokensPerS ?? 0).toFixed(1) : null,
    tokens_per_s_offload: off ? +(off.tokensPerS ?? 0).toFixed(1) : null,
    peak_rss_gb: off ? +off.peakRssGB.toFixed(3) : null,
    peak_rss_gb_no_offload: none ? +none.peakRssGB.toFixed(3) : null,
  }),
);
