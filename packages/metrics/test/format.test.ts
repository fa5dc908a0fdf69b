// Numbers print as Python's f"{x:.Nf}" prints them: the exact binary value,
// rounded half to even (toFixed rounds exact ties away from zero).
import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { formatFixed, roundScore } from "../src/index.js";

describe("formatFixed", () => {
  it.each([
    // exact binary ties: half to even
    [0.125, 2, "0.12"],
    [0.375, 2, "0.38"],
    [6.25, 1, "6.2"],
    [6.75, 1, "6.8"],
    [0.5, 0, "0"],
    [1.5, 0, "2"],
    [2.5, 0, "2"],
    [12.25, 1, "12.2"],
    // decimal-looking ties are not ties in binary
    [12.345, 2, "12.35"], // 12.3450000000000006...
    [2.675, 2, "2.67"], // 2.67499999999999982...
    [1.005, 2, "1.00"],
    [9.995, 2, "9.99"],
    [99.995, 2, "100.00"],
    [99.9999, 2, "100.00"],
    [1234.5678, 3, "1234.568"],
    [0, 2, "0.00"],
    [-0, 2, "-0.00"],
    [100, 2, "100.00"],
    [1e-20, 2, "0.00"],
    [1e22, 2, "10000000000000000000000.00"],
    [Number.NaN, 2, "nan"],
    [Number.POSITIVE_INFINITY, 2, "inf"],
  ])("formatFixed(%d, %d) = %s", (x, digits, expected) => {
    expect(formatFixed(x, digits)).toBe(expected);
  });

  it("agrees with toFixed wherever the value is not an exact tie", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1000, noNaN: true }), fc.integer({ min: 0, max: 4 }), (x, d) => {
        const scaled = x * 10 ** d;
        const isTie = Number.isInteger(scaled * 2) && !Number.isInteger(scaled);
        if (!isTie) expect(formatFixed(x, d)).toBe(x.toFixed(d));
      }),
      { numRuns: 2000 },
    );
  });

  it("roundScore parses the formatted value back", () => {
    expect(roundScore(35.125)).toBe(35.12);
    expect(roundScore(61.4)).toBe(61.4);
    expect(roundScore(12.25, 1)).toBe(12.2);
  });

  it("rejects an unusable digit count", () => {
    expect(() => formatFixed(1, -1)).toThrow(RangeError);
    expect(() => formatFixed(1, 1.5)).toThrow(RangeError);
  });
});
