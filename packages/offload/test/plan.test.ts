import { type ModelConfigInput, Transformer } from "@polymoe/model";
import { describe, expect, it } from "vitest";

import { countParameters, largestTrainable, planMemory, type Strategy } from "../src/index.js";
import "./helpers.js";

const base: ModelConfigInput = {
  vocabSize: 50,
  dModel: 16,
  heads: 2,
  dFF: 24,
  encoderLayers: 2,
  decoderLayers: 3,
  maxLength: 12,
};
const configs: [string, ModelConfigInput][] = [
  ["dense", base],
  [
    "dense, learned positions, a narrowed FFN, no encoder",
    { ...base, encoderLayers: 0, positions: "learned", ffnWidths: { decoder: { "0": 8 } } },
  ],
  [
    "token MoE (top-2, noisy) every other layer",
    {
      ...base,
      moe: { encoder: { numExperts: 4, router: { type: "topk", k: 2, noise: { type: "noisy-topk" } } } },
    },
  ],
  [
    "task MoE in both stacks, expert width, residual, a pyramid",
    {
      ...base,
      moe: {
        encoder: {
          numExperts: [3, 5],
          layers: "all",
          dFF: 20,
          router: { type: "task", k: 2, numTasks: 4, taskEmbedDim: 6 },
        },
        decoder: {
          numExperts: 4,
          residual: true,
          expertBias: false,
          router: { type: "task", k: 2, numTasks: 4 },
        },
      },
    },
  ],
  [
    "static-task and expert-choice routers",
    {
      ...base,
      moe: {
        encoder: { numExperts: 4, router: { type: "static-task", k: 1, numTasks: 4 } },
        decoder: { numExperts: 6, router: { type: "expert-choice" } },
      },
    },
  ],
];

describe("countParameters", () => {
  for (const [label, cfg] of configs) {
    it(`equals Transformer.numParameters(): ${label}`, () => {
      const model = new Transformer(cfg, { seed: 1, namespace: `plan.${label}` });
      const groups = model.parameterGroups();
      const size = (m: Map<string, { size: number }>) => [...m.values()].reduce((s, v) => s + v.size, 0);
      const c = countParameters(cfg);
      expect(c.total).toBe(model.numParameters());
      expect(c.expert).toBe(size(groups.expert));
      expect(c.dense).toBe(size(groups.dense));
      model.dispose();
    });
  }
});

describe("planMemory", () => {
  const moe: ModelConfigInput = {
    ...base,
    dModel: 1024,
    heads: 16,
    dFF: 4096,
    vocabSize: 32000,
    encoderLayers: 12,
    decoderLayers: 12,
    moe: {
      encoder: { numExperts: 64, router: { type: "topk", k: 2 } },
      decoder: { numExperts: 64, router: { type: "task", k: 2, numTasks: 50 } },
    },
  };
  const s: Strategy = {
    devices: 64,
    ep: 64,
    zero: 0,
    offload: "none",
    precision: "fp16",
    devicesPerHost: 8,
    tokens: 4096,
    seqLen: 128,
  };

  it("ZeRO stages shard state, then gradients, then parameters; offload moves the state off the device", () => {
    const p = countParameters(moe);
    const z0 = planMemory(moe, s);
    const local = p.dense + p.expert / 64;
    expect(z0.device.parameters).toBe(2 * local);
    expect(z0.device.optimizer).toBe(12 * local);
    const z1 = planMemory(moe, { ...s, zero: 1 });
    expect(z1.device.optimizer).toBeCloseTo(12 * (p.dense / 64 + p.expert / 64), 0);
    expect(z1.device.gradients).toBe(z0.device.gradients);
    const z2 = planMemory(moe, { ...s, zero: 2 });
    expect(z2.device.gradients).toBeCloseTo(2 * (p.dense / 64 + p.expert / 64), 0);
    const off = planMemory(moe, { ...s, zero: 2, offload: "host" });
    expect(off.device.optimizer).toBe(0);
    expect(off.host.optimizer).toBeCloseTo(8 * z2.device.optimizer, 0);
    expect(planMemory(moe, { ...s, offload: "disk" }).disk.optimizer).toBeGreaterThan(0);
    // All-to-all only with expert parallelism; all-reduce over the dense replicas.
    expect(z0.communication.allToAll).toBeGreaterThan(0);
    expect(planMemory(moe, { ...s, ep: 1 }).communication.allToAll).toBe(0);
    expect(() => planMemory(moe, { ...s, ep: 7 })).toThrow(/--ep 7 must divide --devices 64/);
  });

  it("largest trainable: offload + ZeRO-2 cut expert bytes per parameter from 16 to 2 + 2/edp (the seed's ~8x at ep < devices)", () => {
    const GB = 2 ** 30;
    const ratio = (ep: number) => {
      const none = largestTrainable(moe, { ...s, ep, zero: 0 }, 32 * GB, 1e15)!;
      const off = largestTrainable(moe, { ...s, ep, zero: 2, offload: "host" }, 32 * GB, 1e15)!;
      expect(none.experts % ep).toBe(0);
      const at = (E: number) =>
        ({
          ...moe,
          moe: {
            encoder: { ...(moe.moe!.encoder as object), numExperts: E },
            decoder: { ...(moe.moe!.decoder as object), numExperts: E },
          },
        }) as ModelConfigInput;
      // The answer fits and the next multiple of ep does not.
      expect(planMemory(at(none.experts), { ...s, ep }).device.total).toBeLessThanOrEqual(32 * GB);
      expect(planMemory(at(none.experts + ep), { ...s, ep }).device.total).toBeGreaterThan(32 * GB);
      return off.params / none.params;
    };
    // ep 8 on 64 devices: expert bytes 16 -> 2 + 2/8, dense 16 -> 2 + 2/64, and the dense part and activations
    // (fixed) weigh less next to them: 8.4x.
    expect(ratio(8)).toBeCloseTo(8.43, 1);
    // ep 64: one replica per expert, nothing for ZeRO-2 to shard: expert bytes 16 -> 4.
    expect(ratio(64)).toBeCloseTo(4.79, 1);
  });
});
