import * as tf from "@tensorflow/tfjs-core";
import * as fc from "fast-check";
import { describe, expect, it } from "vitest";

import { Rng, topKGating } from "../src/index.js";
import { env, onBackend, take } from "./helpers.js";

const routingCase = fc.record({
  T: fc.integer({ min: 1, max: 40 }),
  E: fc.integer({ min: 1, max: 9 }),
  kRaw: fc.integer({ min: 1, max: 4 }),
  cf: fc.oneof(fc.constant(0), fc.double({ min: 0.1, max: 3, noNaN: true })),
  minCapacity: fc.integer({ min: 0, max: 3 }),
  policy: fc.constantFrom("position", "random", "score") as fc.Arbitrary<"position" | "random" | "score">,
  softmaxOrder: fc.constantFrom("before", "after") as fc.Arbitrary<"before" | "after">,
  seed: fc.integer({ min: 1, max: 1e6 }),
  padEvery: fc.integer({ min: 0, max: 5 }),
});

describe("routing invariants (fast-check)", () => {
  it("no expert over capacity; kept destinations unique; weights per token sum <= 1; dropped pairs weigh 0", () => {
    onBackend(env.backends.at(-1) as string, () => {
      fc.assert(
        fc.property(routingCase, (c) => {
          const k = Math.min(c.kRaw, c.E);
          const rng = new Rng(c.seed);
          const logits = tf.tensor2d(
            Float32Array.from({ length: c.T * c.E }, () => (rng.next() - 0.5) * 6),
            [c.T, c.E],
          );
          const padMask = Uint8Array.from({ length: c.T }, (_, t) =>
            c.padEvery > 0 && t % c.padEvery === 0 ? 0 : 1,
          );
          const r = topKGating(
            logits,
            {
              k,
              softmaxOrder: c.softmaxOrder,
              renormalize: true,
              secondExpertSampling: false,
              capacityFactor: c.cf,
              minCapacity: c.minCapacity,
              policy: c.policy,
            },
            { training: true, rng, padMask },
          );
          const w = take(r.combineWeight);
          tf.dispose([logits, r.auxLoss, r.zLoss]);
          const perExpert = new Int32Array(c.E);
          const seen = new Set<number>();
          r.pairs.dest.forEach((d, p) => {
            if (d < 0) {
              expect(w[p]).toBe(0);
              return;
            }
            expect(seen.has(d)).toBe(false);
            seen.add(d);
            expect(Math.floor(d / r.capacity)).toBe(r.expert[p]);
            perExpert[r.expert[p] as number]!++;
          });
          for (const n of perExpert) expect(n).toBeLessThanOrEqual(r.capacity);
          for (let t = 0; t < c.T; t++) {
            let s = 0;
            for (let j = 0; j < k; j++) s += w[t * k + j] as number;
            expect(s).toBeLessThanOrEqual(1 + 1e-5);
            if (!padMask[t]) expect(s).toBe(0);
          }
          if (c.cf <= 0) expect(r.metrics.droppedFraction).toBe(0);
        }),
        { numRuns: 150, seed: 20261122 },
      );
    });
  });
});
