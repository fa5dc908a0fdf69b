import { describe, expect, it } from "vitest";

import {
  createLocalCommunicator,
  exchangeFromExperts,
  exchangeToExperts,
  exchangeTokensToExperts,
  runSimulated,
} from "../src/index.js";
import { exchange } from "./ranks/moe.js";
import { type ExchangeArgs, exchangeReference } from "./ranks/moe_reference.js";

type Out = Awaited<ReturnType<typeof exchange>>;
const args: ExchangeArgs = { experts: 8, capacity: 3, dModel: 5, seed: 11 };

function checkAgainstReference(res: Out[]) {
  const p = res.length;
  res.forEach((o, r) => {
    const ref = exchangeReference(args, p, r);
    expect(o.expertInputLRCM).toEqual(ref.expertInputLRCM);
    expect(o.combinedECM).toEqual(ref.combinedECM);
    expect(o.droplessExpertInput).toEqual(ref.droplessExpertInput);
    expect(o.droplessOut).toEqual(ref.droplessOut);
    expect(o.inverse).toBe(true);
    const [ax, aty] = o.dots as [number, number];
    expect(Math.abs(ax - aty)).toBeLessThan(1e-9 * Math.max(1, Math.abs(ax)));
    // capacity: 2 exchanges + 2 for the adjoint/inverse checks; dropless: 1 allToAll of counts
    expect(o.allToAllCalls).toBe(5);
    expect(o.allToAllVCalls).toBe(2);
  });
}

describe("MoE all-to-all exchange", () => {
  it("1 rank (the single-rank reference): the exchange is the identity and experts apply in place", async () => {
    const out = await exchange(createLocalCommunicator(), args);
    checkAgainstReference([out]);
  });

  it.each([2, 4])(
    "%i simulated ranks equal the single-rank reference (capacity and dropless, adjoint, inverse)",
    async (p) => {
      const res = await runSimulated<ExchangeArgs, Out>({
        worldSize: p,
        module: new URL("./ranks/moe.ts", import.meta.url),
        export: "exchange",
        args,
      });
      checkAgainstReference(res);
      // N ranks = 1 rank: every rank's combined output equals what one rank computes on its tokens.
      const single = exchangeReference(args, 1, 0);
      expect(res[0]!.combinedECM).toEqual(single.combinedECM);
    },
  );

  it("bad shapes are rejected with the expected sizes", async () => {
    const c = createLocalCommunicator();
    const shape = { experts: 4, capacity: 2, dModel: 3 };
    await expect(exchangeToExperts(c, new Float32Array(23), shape)).rejects.toThrow(
      "exchangeToExperts: dispatchedECM has 23 elements, expected experts*capacity*dModel = 4*2*3 = 24",
    );
    await expect(exchangeFromExperts(c, new Float32Array(24), { ...shape, dModel: 0 })).rejects.toThrow(
      "shape.dModel must be a positive integer, got 0",
    );
    await expect(exchangeTokensToExperts(c, new Float32Array(5), Int32Array.of(1, 1), 3)).rejects.toThrow(
      "tokensTM must be a Float32Array of sum(countsE)*dModel = 2*3 = 6 elements, got 5",
    );
  });
});
