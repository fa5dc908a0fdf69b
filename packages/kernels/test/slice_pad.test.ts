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
  strides,
  take,
  unravel,
} from "./helpers.js";

function refSlice(x: Float32Array, shape: number[], begin: number[], sz: number[]): Float32Array {
  const st = strides(shape);
  const out = new Float32Array(size(sz));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, sz);
    out[i] = x[idx.reduce((o, v, d) => o + (v + begin[d]!) * st[d]!, 0)]!;
  }
  return out;
}

function refPad(x: Float32Array, shape: number[], pads: [number, number][], value: number): Float32Array {
  const outShape = shape.map((d, i) => pads[i]![0] + d + pads[i]![1]);
  const st = strides(shape);
  const out = new Float32Array(size(outShape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, outShape);
    const inside = idx.every((v, d) => v >= pads[d]![0] && v < pads[d]![0] + shape[d]!);
    out[i] = inside ? x[idx.reduce((o, v, d) => o + (v - pads[d]![0]) * st[d]!, 0)]! : value;
  }
  return out;
}

const SLICES: [number[], number[], number[]][] = [
  [[10], [3], [4]],
  [
    [512, 384],
    [0, 128],
    [512, 128],
  ], // a column block of a fused QKV projection
  [
    [4, 5, 6],
    [1, 0, 2],
    [2, 5, 3],
  ],
  [
    [4, 5, 6],
    [0, 1, 0],
    [4, 3, 6],
  ],
  [
    [2, 3, 4, 5],
    [1, 1, 1, 1],
    [1, 2, 2, 3],
  ],
  [
    [3, 4],
    [0, 1],
    [3, 0],
  ],
];

describe.skipIf(!nativeAvailable)(`Slice and PadV2 (native vs plain loops)${skipNote}`, () => {
  it.each(SLICES.map(([s, b, z]) => [`[${s}] at [${b}] size [${z}]`, s, b, z] as const))(
    "slice %s",
    (_, shape, begin, sz) => {
      const x = rand(size(shape), 131);
      onBackend(NATIVE, () =>
        expectNoLeak(() => {
          const t = tf.tensor(x, shape);
          const out = tf.slice(t, begin, sz);
          expect(out.shape).toEqual(sz);
          expect(Array.from(take(out))).toEqual(Array.from(refSlice(x, shape, begin, sz)));
          t.dispose();
        }),
      );
    },
  );

  it("a slice past the end is rejected with tfjs's message", () => {
    onBackend(NATIVE, () => {
      expect(() => tf.slice(tf.ones([4, 5]), [0, 3], [4, 3])).toThrow(/slice/i);
    });
  });

  it.each([
    [[5], [[2, 1]], 0],
    [
      [3, 4],
      [
        [1, 0],
        [0, 2],
      ],
      -1.5,
    ],
    [
      [2, 3, 4],
      [
        [0, 0],
        [1, 1],
        [0, 0],
      ],
      7,
    ],
    [
      [2, 3, 4],
      [
        [0, 0],
        [0, 0],
        [3, 1],
      ],
      0,
    ],
    [
      [0, 3],
      [
        [1, 1],
        [0, 0],
      ],
      2,
    ],
  ] as [number[], [number, number][], number][])("pad [%s] by %j with %d", (shape, pads, value) => {
    const x = rand(size(shape), 132);
    onBackend(NATIVE, () =>
      expectNoLeak(() => {
        const t = tf.tensor(x, shape);
        const out = tf.pad(t, pads, value);
        expect(Array.from(take(out))).toEqual(Array.from(refPad(x, shape, pads, value)));
        t.dispose();
      }),
    );
  });

  it("slice's gradient (a pad) matches the cpu backend", () => {
    const xv = rand(6 * 9, 133);
    const w = rand(6 * 3, 134);
    const f = () =>
      tf.tidy(() =>
        take(
          tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.slice(x, [0, 3], [6, 3]), tf.tensor(w, [6, 3]))))(
            tf.tensor(xv, [6, 9]),
          ),
        ),
      );
    expectClose(onBackend(NATIVE, f), onBackend("cpu", f), { rtol: 0, atol: 0 });
  });
});
