import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import {
  expectClose,
  expectNoLeak,
  NATIVE,
  nativeAvailable,
  onBackend,
  rand,
  size,
  skipNote,
  take,
} from "./helpers.js";

describe.skipIf(!nativeAvailable)(`GatherV2 (native)${skipNote}`, () => {
  const cases: [number[], number, number[]][] = [
    [[10], 0, [3, 0, 9, 3]],
    [[6, 4], 0, [5, 0, 2, 2, 1]],
    [[3, 6, 4], 1, [5, 0, 2]],
    [[3, 4, 6], 2, [0, 5]],
    [[8000, 64], 0, Array.from({ length: 2048 }, (_, i) => (i * 7919) % 8000)], // embedding lookup, threaded
  ];
  it.each(cases.map(([s, a, i]) => [`[${s}] axis ${a}, ${i.length} indices`, s, a, i] as const))(
    "%s matches the cpu backend",
    (_, shape, axis, idx) => {
      const x = rand(size(shape), 111);
      const run = () => tf.tidy(() => take(tf.gather(tf.tensor(x, shape), tf.tensor1d(idx, "int32"), axis)));
      const want = onBackend("cpu", run);
      onBackend(NATIVE, () =>
        expectNoLeak(() => {
          expect(Array.from(run())).toEqual(Array.from(want));
        }),
      );
    },
  );

  it("multi-dimensional indices give [...x.shape[:axis], ...indices.shape, ...]", () => {
    onBackend(NATIVE, () => {
      const out = tf.gather(
        tf.tensor2d([
          [1, 2],
          [3, 4],
          [5, 6],
        ]),
        tf.tensor2d(
          [
            [2, 0],
            [1, 1],
          ],
          [2, 2],
          "int32",
        ),
      );
      expect(out.shape).toEqual([2, 2, 2]);
      expect(Array.from(take(out))).toEqual([5, 6, 1, 2, 3, 4, 3, 4]);
    });
  });

  it("an out-of-range index raises an error naming the index and the range", () => {
    onBackend(NATIVE, () => {
      expect(() => tf.gather(tf.ones([4, 2]), tf.tensor1d([1, 4], "int32"))).toThrow(
        /index value 4 .* not in \[0, 3\]/,
      );
      expect(() => tf.gather(tf.ones([4, 2]), tf.tensor1d([-1], "int32"))).toThrow(/index value -1/);
    });
  });

  it("gradient (an embedding backward: UnsortedSegmentSum) matches the cpu backend", () => {
    const xv = rand(50 * 8, 112);
    const idx = [3, 7, 3, 49, 0, 3];
    const w = rand(idx.length * 8, 113);
    const f = () =>
      tf.tidy(() =>
        take(
          tf.grad((x: tf.Tensor) =>
            tf.sum(tf.mul(tf.gather(x, tf.tensor1d(idx, "int32")), tf.tensor(w, [idx.length, 8]))),
          )(tf.tensor(xv, [50, 8])),
        ),
      );
    expectClose(onBackend(NATIVE, f), onBackend("cpu", f), { rtol: 1e-6, atol: 1e-7 });
  });
});

describe.skipIf(!nativeAvailable)(
  `UnsortedSegmentSum and ScatterNd (native vs plain loops)${skipNote}`,
  () => {
    it("unsortedSegmentSum sums duplicates and drops out-of-range ids", () => {
      const n = 300;
      const inner = 300;
      const x = rand(n * inner, 121);
      const ids = Array.from({ length: n }, (_, i) => ((i * 37) % 23) - 2); // includes -2, -1 and 20
      const segs = 20;
      const want = new Float64Array(segs * inner);
      ids.forEach((s, r) => {
        if (s < 0 || s >= segs) return;
        for (let c = 0; c < inner; c++) want[s * inner + c]! += x[r * inner + c]!;
      });
      onBackend(NATIVE, () =>
        expectNoLeak(() => {
          const data = tf.tensor(x, [n, inner]);
          const segIds = tf.tensor1d(ids, "int32");
          const out = tf.unsortedSegmentSum(data, segIds, segs);
          expect(out.shape).toEqual([segs, inner]);
          expectClose(take(out), want, { rtol: 1e-5, atol: 1e-5 });
          tf.dispose([data, segIds]);
        }),
      );
    });

    it("unsortedSegmentSum with a row count mismatch names both sizes", () => {
      onBackend(NATIVE, () => {
        expect(() => tf.unsortedSegmentSum(tf.ones([4, 2]), tf.tensor1d([0, 1, 2], "int32"), 3)).toThrow(
          /3|4/,
        );
      });
    });

    it("scatterND adds update slices into zeros, duplicates summed", () => {
      onBackend(NATIVE, () =>
        expectNoLeak(() => {
          const indices = tf.tensor2d(
            [
              [0, 1],
              [2, 0],
              [0, 1],
            ],
            [3, 2],
            "int32",
          );
          const updates = tf.tensor2d([
            [1, 2],
            [3, 4],
            [10, 20],
          ]);
          const out = tf.scatterND(indices, updates, [3, 2, 2]);
          expect(out.shape).toEqual([3, 2, 2]);
          expect(Array.from(take(out))).toEqual([0, 0, 11, 22, 0, 0, 0, 0, 3, 4, 0, 0]);
          tf.dispose([indices, updates]);
        }),
      );
    });

    it("scatterND with an out-of-range index names it", () => {
      onBackend(NATIVE, () => {
        const indices = tf.tensor2d([[0, 2]], [1, 2], "int32");
        expect(() => tf.scatterND(indices, tf.ones([1, 2]), [3, 2, 2])).toThrow(
          /indices\[0\]\[1\] = 2 is not in \[0, 1\]/,
        );
      });
    });
  },
);
