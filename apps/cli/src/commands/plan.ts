import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { countParameters, largestTrainable, planMemory, type Strategy } from "@polymoe/offload";

import type { Command } from "../registry.js";

const HELP = `usage: polymoe plan --config FILE [--devices N] [--device-memory GB] [--host-memory GB]
                    [--ep N] [--zero 0|1|2|3] [--offload none|host|disk] [--precision fp16|fp32]
                    [--devices-per-host N] [--tokens N] [--seq-len N] [--vocab N] [--tasks N]

The scale planner: parameters of the model in FILE (a run config with a
"model" block, or a model config), memory per tier (device, host, disk) for
parameters, gradients, optimizer state and activations under the strategy
given, communication per device per step, and the largest model (experts per
MoE layer) each strategy trains within the memory given.

  --devices N          devices in total (default 1)
  --device-memory GB   memory per device, GiB (default 32)
  --host-memory GB     memory per host, GiB (default 256)
  --ep N               expert-parallel degree (divides --devices; default 1)
  --zero S             ZeRO stage 0-3 (default 0)
  --offload T          optimizer state on the device (none), in host memory (host) or on disk (disk)
  --precision P        fp16 (2+2 bytes, 12 of state; DeepSpeed) or fp32 (4+4, 8: PolyMoE on CPU); default fp16
  --devices-per-host N devices sharing a host's memory (default min(devices, 8))
  --tokens N           tokens per device per micro-batch (default 4096); --seq-len N (default 128)
  --vocab N, --tasks N vocabulary size and task count when the config leaves them to the corpus (32000, 50)`;

type ModelInput = Parameters<typeof countParameters>[0];

function fail(msg: string): number {
  console.error(`polymoe plan: ${msg}`);
  return 2;
}

const GiB = 2 ** 30;
const gbs = (b: number) => `${(b / GiB).toFixed(b < 10 * GiB ? 2 : 1)} GB`;
const count = (n: number) =>
  n >= 1e12
    ? `${(n / 1e12).toFixed(2)}T`
    : n >= 1e9
      ? `${(n / 1e9).toFixed(2)}B`
      : `${(n / 1e6).toFixed(1)}M`;

/** Fills what a run config leaves to the corpus: vocabSize and task routers' numTasks. */
function modelOf(file: unknown, vocab: number, tasks: number, used: string[]): ModelInput {
  const obj = file as Record<string, unknown>;
  const model = structuredClone((obj.model ?? obj) as Record<string, unknown>);
  if (model.vocabSize === undefined) {
    model.vocabSize = vocab;
    used.push(`vocabSize ${vocab} (--vocab)`);
  }
  const moe = (model.moe ?? {}) as Record<string, Record<string, unknown> | undefined>;
  for (const stack of ["encoder", "decoder"]) {
    const router = moe[stack]?.router as Record<string, unknown> | undefined;
    if (
      router &&
      (router.type === "task" || router.type === "static-task") &&
      router.numTasks === undefined
    ) {
      router.numTasks = tasks;
      used.push(`model.moe.${stack}.router.numTasks ${tasks} (--tasks)`);
    }
  }
  return model as unknown as ModelInput;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      config: { type: "string" },
      devices: { type: "string", default: "1" },
      "device-memory": { type: "string", default: "32" },
      "host-memory": { type: "string", default: "256" },
      ep: { type: "string", default: "1" },
      zero: { type: "string", default: "0" },
      offload: { type: "string", default: "none" },
      precision: { type: "string", default: "fp16" },
      "devices-per-host": { type: "string" },
      tokens: { type: "string", default: "4096" },
      "seq-len": { type: "string", default: "128" },
      vocab: { type: "string", default: "32000" },
      tasks: { type: "string", default: "50" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
}

export const command: Command = {
  summary:
    "scale planner: memory per device/host/disk, communication and the largest trainable model per strategy",
  async run(argv) {
    let v: ReturnType<typeof parse>["values"];
    try {
      v = parse(argv).values;
    } catch (e) {
      return fail((e as Error).message);
    }
    if (v.help) {
      console.log(HELP);
      return 0;
    }
    if (!v.config) return fail("--config FILE is required (e.g. apps/train/configs/taskmoe-base.json)");
    const int = (name: string, raw: string | undefined, min: number): number => {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < min)
        throw new Error(`--${name} must be an integer >= ${min}, got '${raw}'`);
      return n;
    };
    let strategy: Strategy;
    let deviceBytes: number;
    let hostBytes: number;
    const used: string[] = [];
    let model: ModelInput;
    try {
      const devices = int("devices", v.devices, 1);
      const zero = int("zero", v.zero, 0);
      if (zero > 3) throw new Error(`--zero must be 0, 1, 2 or 3, got ${zero}`);
      if (!["none", "host", "disk"].includes(v.offload as string))
        throw new Error(`--offload must be none, host or disk, got '${v.offload}'`);
      if (!["fp16", "fp32"].includes(v.precision as string))
        throw new Error(`--precision must be fp16 or fp32, got '${v.precision}'`);
      deviceBytes = Number(v["device-memory"]) * GiB;
      hostBytes = Number(v["host-memory"]) * GiB;
      if (!(deviceBytes > 0)) throw new Error(`--device-memory must be > 0, got '${v["device-memory"]}'`);
      if (!(hostBytes > 0)) throw new Error(`--host-memory must be > 0, got '${v["host-memory"]}'`);
      strategy = {
        devices,
        ep: int("ep", v.ep, 1),
        zero: zero as Strategy["zero"],
        offload: v.offload as Strategy["offload"],
        precision: v.precision as Strategy["precision"],
        devicesPerHost: v["devices-per-host"]
          ? int("devices-per-host", v["devices-per-host"], 1)
          : Math.min(devices, 8),
        tokens: int("tokens", v.tokens, 1),
        seqLen: int("seq-len", v["seq-len"], 1),
      };
      const text = readFileSync(v.config, "utf8");
      let file: unknown;
      try {
        file = JSON.parse(text);
      } catch (e) {
        throw new Error(`${v.config}: not valid JSON (${(e as Error).message})`);
      }
      model = modelOf(file, int("vocab", v.vocab, 2), int("tasks", v.tasks, 1), used);
    } catch (e) {
      return fail((e as Error).message);
    }
    let plan: ReturnType<typeof planMemory>;
    try {
      plan = planMemory(model, strategy);
    } catch (e) {
      return fail(`${v.config}: ${(e as Error).message}`);
    }
    const p = countParameters(model);
    const s = strategy;
    console.log(
      `model ${v.config}: ${count(p.total)} parameters (${count(p.expert)} in experts over ${p.moeLayers} MoE layers, ${count(p.dense)} dense)`,
    );
    if (used.length > 0) console.log(`defaults used: ${used.join(", ")}`);
    console.log(
      `strategy: ${s.devices} devices, ep ${s.ep}, ZeRO-${s.zero}, offload ${s.offload}, ${s.precision}, ` +
        `${s.tokens} tokens per device (seq ${s.seqLen}), ${s.devicesPerHost} devices per host`,
    );
    console.log("");
    const d = plan.device;
    console.log(
      `per device      parameters ${gbs(d.parameters)}, gradients ${gbs(d.gradients)}, optimizer state ${gbs(d.optimizer)}, activations ${gbs(d.activations)}: ${gbs(d.total)} of ${gbs(deviceBytes)}${d.total > deviceBytes ? "  DOES NOT FIT" : ""}`,
    );
    console.log(
      `per host        optimizer state ${gbs(plan.host.optimizer)} of ${gbs(hostBytes)}${plan.host.total > hostBytes ? "  DOES NOT FIT" : ""}`,
    );
    console.log(`on disk         optimizer state ${gbs(plan.disk.optimizer)} per host`);
    const c = plan.communication;
    console.log(
      `per device/step all-to-all ${gbs(c.allToAll)}, all-reduce ${gbs(c.allReduce)}, all-gather ${gbs(c.allGather)} sent`,
    );
    console.log("");
    console.log(
      `largest trainable (experts per MoE layer) with ${gbs(deviceBytes)} per device, ${gbs(hostBytes)} per host:`,
    );
    const rows: [string, Partial<Strategy>][] = [
      ["ZeRO-0", { zero: 0, offload: "none" }],
      ["ZeRO-1", { zero: 1, offload: "none" }],
      ["ZeRO-2", { zero: 2, offload: "none" }],
      ["ZeRO-2 + host offload", { zero: 2, offload: "host" }],
      ["ZeRO-2 + disk offload", { zero: 2, offload: "disk" }],
    ];
    let base: number | undefined;
    for (const [name, over] of rows) {
      const r = largestTrainable(model, { ...s, ...over }, deviceBytes, hostBytes);
      if (r && base === undefined) base = r.params;
      const x = r && base ? `  ${(r.params / base).toFixed(1)}x` : "";
      console.log(
        `  ${name.padEnd(24)}${r ? `${String(r.experts).padStart(8)} experts  ${count(r.params).padStart(9)} parameters${x}` : "  does not fit with one expert per device"}`,
      );
    }
    return plan.device.total > deviceBytes || plan.host.total > hostBytes ? 1 : 0;
  },
};
