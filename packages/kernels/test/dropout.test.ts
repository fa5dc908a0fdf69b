// Dropout on every backend; on the native one, the counter-based mask against a
// plain BigInt re-implementation (literal values), and its independence from
// the thread count.
import "@tensorflow/tfjs-backend-wasm";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";

import { dropout, setNumThreads } from "../src/index.js";
import { expectNoLeak, NATIVE, nativeAvailable, onBackend, rand, skipNote, take } from "./helpers.js";

const backends = ["cpu", "wasm", ...(nativeAvailable ? [NATIVE] : [])];

beforeAll(async () => {
  await tf.setBackend("wasm");
  await tf.ready();
  await tf.setBackend(nativeAvailable ? NATIVE : "cpu");
});

/** The native mask: keep element i iff high32(splitmix64(seed * 2^32 + i)) < floor((1 - rate) * 2^32). */
function referenceKeep(n: number, rate: number, seed: number): boolean[] {
  const M = (1n << 64n) - 1n;
  const mix = (z0: bigint) => {
    let z = (z0 + 0x9e3779b97f4a7c15n) & M;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    return z ^ (z >> 31n);
  };
  const threshold = BigInt(Math.floor((1 - rate) * 2 ** 32));
  return Array.from({ length: n }, (_, i) => mix((BigInt(seed) << 32n) + BigInt(i)) >> 32n < threshold);
}

describe.each(backends)("dropout on the %s backend", (backend) => {
  it("zeroes about `rate` of the elements, scales the rest by 1/(1 - rate), repeats for a seed", () =>
    onBackend(backend, () =>
      expectNoLeak(() => {
        const n = 50_000;
        const x = tf.tensor1d(rand(n, 501).map((v) => v + 3)); // no zeros in x
        const a = take(dropout(x, 0.25, 7));
        const b = take(dropout(x, 0.25, 7));
        const c = take(dropout(x, 0.25, 8));
        const xs = x.dataSync();
        let zeros = 0;
        for (let i = 0; i < n; i++) {
          if (a[i] === 0) zeros++;
          else expect(Math.abs(a[i]! - xs[i]! / 0.75)).toBeLessThan(1e-5 * Math.abs(a[i]!));
        }
        expect(Math.abs(zeros / n - 0.25)).toBeLessThan(0.01);
        expect(Array.from(a)).toEqual(Array.from(b));
        expect(Array.from(a)).not.toEqual(Array.from(c));
        x.dispose();
      }),
    ));

  it("the gradient is the forward mask and scale applied to dy", () =>
    onBackend(backend, () =>
      expectNoLeak(() => {
        const x = tf.tensor2d(
          rand(40 * 30, 502).map((v) => v + 3),
          [40, 30],
        );
        const g = tf.tensor2d(rand(40 * 30, 503), [40, 30]);
        const y = take(dropout(x, 0.4, 99));
        const dx = take(tf.grad((a: tf.Tensor) => tf.sum(tf.mul(dropout(a, 0.4, 99), g)))(x));
        const gs = g.dataSync();
        for (let i = 0; i < y.length; i++) {
          const want = y[i] === 0 ? 0 : gs[i]! / 0.6;
          expect(Math.abs(dx[i]! - want)).toBeLessThanOrEqual(1e-6 * Math.abs(want) + 1e-7);
        }
        tf.dispose([x, g]);
      }),
    ));

  it("rate 0 is the identity; a bad rate or seed is refused with its value", () =>
    onBackend(backend, () => {
      const x = tf.ones([3]);
      expect(dropout(x, 0, 1)).toBe(x);
      expect(() => dropout(x, 1, 1)).toThrow(/rate must be in \[0, 1\), got 1/);
      expect(() => dropout(x, 0.1, -1)).toThrow(/seed must be an integer in \[0, 2\^32\), got -1/);
      expect(() => dropout(x, 0.1, 2 ** 32)).toThrow(
        /seed must be an integer in \[0, 2\^32\), got 4294967296/,
      );
      x.dispose();
    }));
});

describe.skipIf(!nativeAvailable)(`native dropout mask${skipNote}`, () => {
  it("matches the counter-based reference exactly, and does not depend on the thread count", () =>
    onBackend(NATIVE, () => {
      const n = 300_000; // above the parallel grain
      const x = tf.ones([n]);
      const keep = referenceKeep(n, 0.1, 12345);
      setNumThreads(1);
      const one = take(dropout(x, 0.1, 12345));
      setNumThreads(2);
      const two = take(dropout(x, 0.1, 12345));
      const scale = Math.fround(1 / 0.9);
      for (let i = 0; i < n; i++) expect(one[i]).toBe(keep[i] ? scale : 0);
      expect(Array.from(two)).toEqual(Array.from(one));
      x.dispose();
    }));
});
