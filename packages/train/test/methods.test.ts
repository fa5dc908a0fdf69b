// Training-method switches, end to end through the trainer: each one must reach
// the router (via the model config and the step the trainer passes) and change
// training exactly where it should — and nowhere else.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type ModelConfigInput, Transformer } from "@polymoe/model";
import { describe, expect, it } from "vitest";

import { TrainConfig, Trainer } from "../src/index.js";
import { assertClose, env, onBackend, quiet, SyntheticSource, tinyDense, uniq } from "./helpers.js";

async function run(model: ModelConfigInput, steps: number, seed = 5) {
  const m = new Transformer(model, { seed: 2, namespace: uniq("methods") });
  const t = new Trainer({
    model: m,
    config: TrainConfig.parse({
      maxSteps: 100,
      seed,
      optimizer: { lr: 3e-3, schedule: { type: "constant", warmupSteps: 1 } },
    }),
    data: new SyntheticSource(16, 8),
    runDir: mkdtempSync(path.join(tmpdir(), "polymoe-methods-")),
    runConfig: {},
    progress: quiet,
    handleSignals: false,
  });
  const results = [];
  for (let i = 0; i < steps; i++) results.push(await t.trainStep());
  const params = new Map([...m.variables()].map(([k, v]) => [k, Array.from(v.dataSync())]));
  t.dispose();
  m.dispose();
  return { results, params };
}

/** One token-routed MoE layer in the encoder (layer 0) with the given router fields. */
const withRouter = (router: Record<string, unknown>): ModelConfigInput => ({
  ...tinyDense,
  moe: { encoder: { layers: [0], numExperts: 4, router: { type: "topk", k: 2, ...router } as never } },
});

const same = (a: Map<string, number[]>, b: Map<string, number[]>) =>
  [...a].every(([k, v]) => b.get(k)!.every((x, i) => x === v[i]));

describe.each(env.backends)("training-method switches on %s", (backend) => {
  it("Random Token Selection: reproducible for a seed, different from position priority — only when experts overflow", () =>
    onBackend(backend, async () => {
      const tight = { capacityFactor: 0.5, minCapacity: 1 };
      const rtsA = await run(withRouter({ ...tight, overflow: "random" }), 3);
      const rtsB = await run(withRouter({ ...tight, overflow: "random" }), 3);
      const pos = await run(withRouter({ ...tight, overflow: "position" }), 3);
      expect(rtsA.results[0]!.moe[0]!.metrics.droppedFraction).toBeGreaterThan(0.3);
      expect(same(rtsA.params, rtsB.params)).toBe(true);
      expect(same(rtsA.params, pos.params)).toBe(false);
      // With room for every token (dropless) the priority order decides nothing
      // (up to summation order; no dropout, whose masks share the RNG RTS draws from).
      const free = (overflow: string) => ({ ...withRouter({ capacityFactor: 0, overflow }), dropout: 0 });
      const rtsFree = await run(free("random"), 3);
      const posFree = await run(free("position"), 3);
      expect(rtsFree.results[0]!.moe[0]!.metrics.droppedFraction).toBe(0);
      // (Losses, not parameters: Adam turns rounding noise in exactly-zero gradients,
      // such as the attention key bias's, into full-size updates.)
      assertClose(
        rtsFree.results.map((r) => r.loss),
        posFree.results.map((r) => r.loss),
        { rtol: 1e-5, atol: 1e-6 },
      );
    }));

  it("gate temperature schedule: the trainer's step drives it; after the schedule it stays at its end", () =>
    onBackend(backend, async () => {
      const { results } = await run(withRouter({ temperature: { start: 4, end: 1, steps: 4 } }), 6);
      expect(results.map((r) => r.moe[0]!.metrics.temperature)).toEqual([4, 3.25, 2.5, 1.75, 1, 1]);
      const cosine = await run(
        withRouter({ temperature: { start: 2, end: 1, steps: 2, kind: "cosine" } }),
        3,
      );
      expect(cosine.results.map((r) => r.moe[0]!.metrics.temperature)).toEqual([2, 1.5, 1]);
    }));

  it("second-expert sampling (GShard) changes training; without it the same seed gives the same parameters", () =>
    onBackend(backend, async () => {
      const plain = await run(withRouter({ capacityFactor: 0 }), 2);
      const sampled = await run(withRouter({ capacityFactor: 0, secondExpertSampling: true }), 2);
      expect(same(plain.params, (await run(withRouter({ capacityFactor: 0 }), 2)).params)).toBe(true);
      expect(same(plain.params, sampled.params)).toBe(false);
    }));
});
