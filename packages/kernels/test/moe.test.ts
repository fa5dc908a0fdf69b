// Index dispatch/combine on every backend (native kernels where registered,
// the composite of tfjs ops elsewhere), against plain loops and the one-hot
// einsum formulation it replaces.
import "@tensorflow/tfjs-backend-wasm";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";

import { type MoePairs, moeCombine, moeDispatch } from "../src/index.js";
import { expectClose, expectNoLeak, NATIVE, nativeAvailable, onBackend, rand, take } from "./helpers.js";

/** Random routing of T tokens, k choices each, over E experts of capacity C (token-major, some dropped). */
function randomPairs(T: number, k: number, E: number, C: number, seed: number): MoePairs {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 4294967296;
  };
  const fill = new Int32Array(E);
  const token = new Int32Array(T * k);
  const dest = new Int32Array(T * k);
  for (let t = 0; t < T; t++) {
    const chosen = new Set<number>();
    for (let j = 0; j < k; j++) {
      let e = Math.floor(next() * E);
      while (chosen.has(e)) e = (e + 1) % E;
      chosen.add(e);
      token[t * k + j] = t;
      const slot = fill[e]!++;
      dest[t * k + j] = slot < C ? e * C + slot : -1;
    }
  }
  return { token, dest };
}

/** Expert-major pairs (each expert picks tokens), as expert-choice routing emits. */
function expertMajor(p: MoePairs): MoePairs {
  const order = Array.from(p.dest.keys()).sort(
    (a, b) => (p.dest[a]! < 0 ? 1e9 : p.dest[a]!) - (p.dest[b]! < 0 ? 1e9 : p.dest[b]!),
  );
  return {
    token: Int32Array.from(order, (i) => p.token[i]!),
    dest: Int32Array.from(order, (i) => p.dest[i]!),
  };
}

function refDispatch(x: Float32Array, M: number, p: MoePairs, rows: number, w?: Float32Array) {
  const buf = new Float64Array(rows * M);
  p.token.forEach((t, i) => {
    const d = p.dest[i]!;
    if (d < 0) return;
    for (let c = 0; c < M; c++) buf[d * M + c] = (w ? w[i]! : 1) * x[t * M + c]!;
  });
  return buf;
}

function refCombine(buf: Float32Array, M: number, p: MoePairs, T: number, w?: Float32Array) {
  const y = new Float64Array(T * M);
  p.token.forEach((t, i) => {
    const d = p.dest[i]!;
    if (d < 0) return;
    for (let c = 0; c < M; c++) y[t * M + c]! += (w ? w[i]! : 1) * buf[d * M + c]!;
  });
  return y;
}

const backends = ["cpu", "wasm", ...(nativeAvailable ? [NATIVE] : [])];

beforeAll(async () => {
  await tf.setBackend("wasm");
  await tf.ready();
  await tf.setBackend(nativeAvailable ? NATIVE : "cpu");
});

describe.each(backends)("moeDispatch / moeCombine on the %s backend", (backend) => {
  it("literal example: 3 tokens, top-2 of 3 experts, capacity 2, one pair dropped", () => {
    // rows: expert0 [slot0, slot1], expert1 [..], expert2 [..]
    const pairs: MoePairs = {
      token: Int32Array.from([0, 0, 1, 1, 2, 2]),
      dest: Int32Array.from([0, 2, 1, -1, 4, 3]),
    };
    onBackend(backend, () =>
      expectNoLeak(() => {
        const x = tf.tensor2d([
          [1, 2],
          [3, 4],
          [5, 6],
        ]);
        const buf = moeDispatch(x, pairs, 6);
        expect(Array.from(buf.dataSync())).toEqual([1, 2, 3, 4, 1, 2, 5, 6, 5, 6, 0, 0]);
        const w = tf.tensor1d([0.5, 0.25, 1, 9, 0.1, 0.2]);
        const y = moeCombine(buf, pairs, 3, w);
        // y0 = 0.5*[1,2] + 0.25*[1,2]; y1 = 1*[3,4] (pair 3 dropped); y2 = 0.1*[5,6] + 0.2*[5,6]
        expectClose(y.dataSync(), [0.75, 1.5, 3, 4, 1.5, 1.8], { rtol: 1e-6 });
        tf.dispose([x, buf, w, y]);
      }),
    );
  });

  it.each([
    ["token-major", false],
    ["expert-major", true],
  ] as const)("forward and all gradients match plain loops (%s pairs)", (_, reorder) => {
    const [T, k, E, C, M] = [40, 2, 5, 12, 7];
    let pairs = randomPairs(T, k, E, C, 7);
    if (reorder) pairs = expertMajor(pairs);
    const rows = E * C;
    const P = pairs.token.length;
    const x = rand(T * M, 301);
    const w = rand(P, 302).map((v) => v + 1);
    const g = rand(T * M, 303); // upstream gradient of y
    onBackend(backend, () =>
      expectNoLeak(() => {
        const xt = tf.tensor2d(x, [T, M]);
        const wt = tf.tensor1d(w);
        const gt = tf.tensor2d(g, [T, M]);
        const buf = moeDispatch(xt, pairs, rows);
        expectClose(take(buf.clone()), refDispatch(x, M, pairs, rows), { rtol: 0, atol: 0 });
        const y = moeCombine(buf, pairs, T, wt);
        expectClose(take(y), refCombine(buf.dataSync() as Float32Array, M, pairs, T, w), {
          rtol: 1e-6,
          atol: 1e-6,
        });
        // loss = sum(g * combine(dispatch(x), w)): dL/dx[t] = sum over pairs of t of w[p] g[t]; dL/dw[p] = <g[t], x[t]>.
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(
            tf.mul(moeCombine(moeDispatch(a as tf.Tensor2D, pairs, rows), pairs, T, b as tf.Tensor1D), gt),
          ),
        )([xt, wt]);
        const wantDx = new Float64Array(T * M);
        const wantDw = new Float64Array(P);
        pairs.token.forEach((t, p) => {
          if (pairs.dest[p]! < 0) return;
          for (let c = 0; c < M; c++) {
            wantDx[t * M + c]! += w[p]! * g[t * M + c]!;
            wantDw[p]! += g[t * M + c]! * x[t * M + c]!;
          }
        });
        expectClose(take(dx!), wantDx, { rtol: 1e-5, atol: 1e-6 });
        expectClose(take(dw!), wantDw, { rtol: 1e-5, atol: 1e-6 });
        tf.dispose([xt, wt, gt, buf]);
      }),
    );
  });

  it("equals the one-hot einsum formulation (values and gradients)", () => {
    const [T, k, E, C, M] = [24, 2, 4, 8, 5];
    const pairs = randomPairs(T, k, E, C, 11);
    const rows = E * C;
    const x = rand(T * M, 311);
    const w = rand(T * k, 312).map((v) => Math.abs(v));
    const experts = rand(E * M * M, 313);
    // dispatch mask D [T, rows] and combine weights W [T, rows] as dense one-hot tensors.
    const D = new Float32Array(T * rows);
    const Wd = new Float32Array(T * rows);
    pairs.dest.forEach((d, p) => {
      if (d < 0) return;
      D[pairs.token[p]! * rows + d] = 1;
      Wd[pairs.token[p]! * rows + d] = w[p]!;
    });
    const run = (indexBased: boolean) =>
      tf.tidy(() => {
        const xt = tf.tensor2d(x, [T, M]);
        const ex = tf.tensor3d(experts, [E, M, M]);
        const f = (a: tf.Tensor, e: tf.Tensor) => {
          const buf = indexBased
            ? moeDispatch(a as tf.Tensor2D, pairs, rows)
            : tf.matMul(tf.tensor2d(D, [T, rows]), a as tf.Tensor2D, true, false); // einsum('tr,tm->rm')
          const out = tf.reshape(tf.matMul(tf.reshape(buf, [E, C, M]), e), [rows, M]) as tf.Tensor2D;
          const y = indexBased
            ? moeCombine(out, pairs, T, tf.tensor1d(w))
            : tf.matMul(tf.tensor2d(Wd, [T, rows]), out); // einsum('tr,rm->tm')
          return tf.sum(tf.square(y));
        };
        const { value, grads } = tf.valueAndGrads(f)([xt, ex]);
        return [take(value), ...grads.map((t) => take(t))];
      });
    const a = onBackend(backend, () => run(true));
    const b = onBackend(backend, () => run(false));
    for (let i = 0; i < a.length; i++) expectClose(a[i]!, b[i]!, { rtol: 1e-4, atol: 1e-5 });
  });

  it("dispatch then combine with unit weights is the identity on kept tokens (top-1)", () => {
    const [T, E, C, M] = [30, 4, 6, 3];
    const pairs = randomPairs(T, 1, E, C, 21);
    const x = rand(T * M, 321);
    onBackend(backend, () => {
      const y = take(tf.tidy(() => moeCombine(moeDispatch(tf.tensor2d(x, [T, M]), pairs, E * C), pairs, T)));
      pairs.dest.forEach((d, t) => {
        for (let c = 0; c < M; c++) expect(y[t * M + c]).toBe(d >= 0 ? x[t * M + c] : 0);
      });
    });
  });

  it("bad pairs and shapes are refused with the argument named", () => {
    onBackend(backend, () => {
      const x = tf.zeros([2, 3]) as tf.Tensor2D;
      const ok = { token: Int32Array.from([0, 1]), dest: Int32Array.from([0, 1]) };
      expect(() => moeDispatch(x, { token: Int32Array.from([0, 2]), dest: ok.dest }, 4)).toThrow(
        /pairs.token\[1\] = 2 is not in \[0, 2\)/,
      );
      expect(() => moeDispatch(x, { token: ok.token, dest: Int32Array.from([3, 3]) }, 4)).toThrow(
        /pairs 0 and 1 both target buffer row 3/,
      );
      expect(() => moeDispatch(x, { token: ok.token, dest: Int32Array.from([0, 4]) }, 4)).toThrow(
        /pairs.dest\[1\] = 4 is not -1 or in \[0, 4\)/,
      );
      expect(() => moeCombine(tf.zeros([4, 3]) as tf.Tensor2D, ok, 2, tf.ones([3]) as tf.Tensor1D)).toThrow(
        /weight must have shape \[2\]/,
      );
      x.dispose();
    });
  });
});
