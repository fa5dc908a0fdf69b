import { Rng, type RouteContext } from "@polymoe/routers";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { filledSlots, LOCAL_EXCHANGE, MoeLayer, type MoeLayerConfigInput, packRows } from "../src/index.js";
import { assertClose, assertNoLeak, env, finiteDifferences, onBackend, rand, take, uniq } from "./helpers.js";

const ctx = (o: Partial<RouteContext> = {}): RouteContext => ({ training: true, rng: new Rng(3), ...o });

/** Values of sum(y * c) and its gradients w.r.t. x and every layer variable. */
function lossAndGrads(
  layer: MoeLayer,
  x: tf.Tensor2D,
  c: tf.Tensor2D,
  context: () => RouteContext,
  auxCoef = 0,
) {
  return tf.tidy(() => {
    const vars = layer.variables();
    const names = Object.keys(vars);
    const f = () => {
      const { y, routing } = layer.forward(x, context());
      return tf.add(tf.sum(tf.mul(y, c)), tf.mul(routing.auxLoss, auxCoef)) as tf.Scalar;
    };
    const dx = take(
      tf.grad((a: tf.Tensor) => {
        const { y } = layer.forward(a as tf.Tensor2D, context());
        return tf.sum(tf.mul(y, c));
      })(x),
    );
    const { value, grads } = tf.variableGrads(
      f,
      names.map((n) => vars[n] as tf.Variable),
    );
    const g: Record<string, Float32Array> = {};
    names.forEach((n) => {
      g[n] = take(grads[(vars[n] as tf.Variable).name] as tf.Tensor);
    });
    return { loss: value.dataSync()[0] as number, dx, g };
  });
}

describe.each(env.backends)("MoeLayer on %s", (backend) => {
  const run = <T>(f: () => T) => onBackend(backend, f);
  const [T, M, F] = [12, 6, 10];

  it("1 expert, top-1, capacity >= tokens is exactly a dense FFN (values and gradients)", () =>
    run(() => {
      const layer = new MoeLayer(
        { numExperts: 1, dFF: F, activation: "gelu", router: { type: "topk", k: 1, capacityFactor: 1 } },
        { dModel: M, seed: 1, name: uniq("dense-eq") },
      );
      const x = tf.tensor2d(rand(T * M, 11), [T, M]);
      const c = tf.tensor2d(rand(T * M, 12), [T, M]);
      const { w1, w2, b1, b2 } = layer.experts as unknown as Record<string, tf.Variable>;
      tf.tidy(() => {
        b1!.assign(tf.tensor2d(rand(F, 13), [1, F]));
        b2!.assign(tf.tensor2d(rand(M, 14), [1, M]));
      });
      const dense = (a: tf.Tensor2D) =>
        tf.add(
          tf.matMul(
            tf.mul(
              tf.mul(tf.add(tf.matMul(a, tf.reshape(w1!, [M, F])), tf.reshape(b1!, [F])), 0.5),
              tf.add(
                tf.erf(
                  tf.mul(tf.add(tf.matMul(a, tf.reshape(w1!, [M, F])), tf.reshape(b1!, [F])), Math.SQRT1_2),
                ),
                1,
              ),
            ),
            tf.reshape(w2!, [F, M]),
          ),
          tf.reshape(b2!, [M]),
        );
      const got = tf.tidy(() => take(layer.forward(x, ctx()).y));
      const want = tf.tidy(() => take(dense(x)));
      assertClose(got, want, { rtol: 1e-4, atol: 1e-5 });
      const gm = take(
        tf.grad((a: tf.Tensor) => tf.sum(tf.mul(layer.forward(a as tf.Tensor2D, ctx()).y, c)))(x),
      );
      const gd = take(tf.grad((a: tf.Tensor) => tf.sum(tf.mul(dense(a as tf.Tensor2D), c)))(x));
      assertClose(gm, gd, { rtol: 1e-4, atol: 1e-5 });
      tf.dispose([x, c]);
      layer.dispose();
    }));

  it("dropless equals capacity-limited routing when nothing overflows (values and gradients)", () =>
    run(() => {
      const mk = (capacityFactor: number, name: string) =>
        new MoeLayer(
          { numExperts: 4, dFF: F, router: { type: "topk", k: 2, capacityFactor, minCapacity: 0 } },
          { dModel: M, seed: 5, name: uniq(name) },
        );
      const a = mk(0, "dropless");
      const b = mk(10, "capacity");
      const x = tf.tensor2d(rand(T * M, 21), [T, M]);
      const c = tf.tensor2d(rand(T * M, 22), [T, M]);
      const ra = lossAndGrads(a, x, c, () => ctx(), 0.1);
      const rb = lossAndGrads(b, x, c, () => ctx(), 0.1);
      expect(ra.loss).toBeCloseTo(rb.loss, 5);
      assertClose(ra.dx, rb.dx, { rtol: 1e-5, atol: 1e-6 });
      for (const n of Object.keys(ra.g)) assertClose(ra.g[n]!, rb.g[n]!, { rtol: 1e-5, atol: 1e-6, what: n });
      tf.dispose([x, c]);
      a.dispose();
      b.dispose();
    }));

  it("equals the one-hot einsum formulation of the same routing (values and gradients)", () =>
    run(() => {
      const E = 4;
      const layer = new MoeLayer(
        {
          numExperts: E,
          dFF: F,
          activation: "relu",
          router: { type: "topk", k: 2, capacityFactor: 1, minCapacity: 0 },
        },
        { dModel: M, seed: 9, name: uniq("einsum") },
      );
      const x = tf.tensor2d(rand(T * M, 31), [T, M]);
      const c = tf.tensor2d(rand(T * M, 32), [T, M]);
      const routing = layer.forward(x, ctx()).routing; // fixes the routing (same RNG seed below)
      const C = routing.capacity;
      const rows = E * C;
      const D = new Float32Array(T * rows);
      routing.pairs.dest.forEach((d, p) => {
        if (d >= 0) D[routing.pairs.token[p]! * rows + d] = 1;
      });
      const einsumLayer = (a: tf.Tensor2D) => {
        const r = layer.router.route(a, ctx());
        const Wc = tf.tensor2d(D, [T, rows]); // dispatch mask
        const Wt = tf.mul(
          Wc,
          tf.reshape(
            tf.unsortedSegmentSum(
              r.combineWeight,
              tf.tensor1d(
                Int32Array.from(routing.pairs.dest, (d, p) =>
                  d >= 0 ? routing.pairs.token[p]! * rows + d : -1,
                ),
                "int32",
              ),
              T * rows,
            ),
            [T, rows],
          ),
        );
        const buf = tf.reshape(tf.matMul(Wc, a, true, false), [E, C, M]) as tf.Tensor3D; // einsum('tr,tm->rm')
        const out = tf.reshape(layer.experts.apply(buf), [rows, M]) as tf.Tensor2D;
        return tf.matMul(Wt, out) as tf.Tensor2D; // einsum('tr,rm->tm')
      };
      const idx = lossAndGrads(layer, x, c, () => ctx());
      const vars = layer.variables();
      const names = Object.keys(vars);
      const ein = tf.tidy(() => {
        const dx = take(tf.grad((a: tf.Tensor) => tf.sum(tf.mul(einsumLayer(a as tf.Tensor2D), c)))(x));
        const { grads } = tf.variableGrads(
          () => tf.sum(tf.mul(einsumLayer(x), c)) as tf.Scalar,
          names.map((n) => vars[n]!),
        );
        return { dx, g: Object.fromEntries(names.map((n) => [n, take(grads[vars[n]!.name]!)])) };
      });
      assertClose(idx.dx, ein.dx, { rtol: 1e-4, atol: 1e-5 });
      for (const n of names)
        assertClose(idx.g[n]!, ein.g[n] as Float32Array, { rtol: 1e-4, atol: 1e-5, what: n });
      tf.dispose([x, c, routing.combineWeight, routing.auxLoss, routing.zLoss]);
      layer.dispose();
    }));

  it("gradients w.r.t. gate and expert weights agree with finite differences", () =>
    run(() => {
      const layer = new MoeLayer(
        { numExperts: 3, dFF: 5, activation: "gelu", router: { type: "topk", k: 2, capacityFactor: 0 } },
        { dModel: 4, seed: 13, name: uniq("fd") },
      );
      const x = tf.tensor2d(rand(8 * 4, 41), [8, 4]);
      const c = tf.tensor2d(rand(8 * 4, 42), [8, 4]);
      const gate = layer.router.variables.gate as tf.Variable;
      tf.tidy(() => gate.assign(tf.tensor2d(rand(12, 43, 1.5), [4, 3]))); // away from top-k ties
      const loss = () =>
        tf.tidy(() => {
          const { y, routing } = layer.forward(x, ctx());
          return tf.add(tf.sum(tf.mul(y, c)), tf.mul(routing.auxLoss, 0.5)).dataSync()[0] as number;
        });
      const { g } = lossAndGrads(layer, x, c, () => ctx(), 0.5);
      for (const name of ["router.gate", "experts.w1", "experts.w2", "experts.b1"]) {
        const v = layer.variables()[name] as tf.Variable;
        const p0 = Float32Array.from(v.dataSync());
        const idx = Array.from({ length: Math.min(12, p0.length) }, (_, i) => (i * 7) % p0.length);
        const numeric = finiteDifferences(
          (p) => {
            tf.tidy(() => v.assign(tf.tensor(p, v.shape)));
            return loss();
          },
          p0,
          idx,
          1e-3,
        );
        tf.tidy(() => v.assign(tf.tensor(p0, v.shape)));
        assertClose(
          idx.map((i) => g[name]![i]!),
          numeric,
          { rtol: 2e-2, atol: 3e-3, what: name },
        );
      }
      tf.dispose([x, c]);
      layer.dispose();
    }));

  it("task routing: every token of a task is served by the same experts", () =>
    run(() => {
      const layer = new MoeLayer(
        { numExperts: 8, dFF: F, router: { type: "task", k: 2, numTasks: 3 } },
        { dModel: M, seed: 17, name: uniq("task") },
      );
      const x = tf.tensor2d(rand(T * M, 51), [T, M]);
      const taskIds = Int32Array.from({ length: T }, (_, t) => t % 3);
      const { y, routing } = layer.forward(x, ctx({ taskIds }));
      for (let t = 3; t < T; t++) {
        expect([routing.expert[t * 2], routing.expert[t * 2 + 1]]).toEqual([
          routing.expert[(t % 3) * 2],
          routing.expert[(t % 3) * 2 + 1],
        ]);
      }
      expect(routing.metrics.droppedFraction).toBe(0); // task routers default to dropless
      tf.dispose([x, y, routing.combineWeight, routing.auxLoss, routing.zLoss]);
      layer.dispose();
    }));

  it("residual MoE mixes the dense FFN and the experts by a learned per-token softmax", () =>
    run(() => {
      const cfg: MoeLayerConfigInput = {
        numExperts: 2,
        dFF: F,
        residual: true,
        router: { type: "topk", k: 1 },
      };
      const layer = new MoeLayer(cfg, { dModel: M, seed: 19, name: uniq("residual") });
      expect(Object.keys(layer.variables()).filter((n) => n.startsWith("residual."))).toHaveLength(5);
      const plain = new MoeLayer({ ...cfg, residual: false }, { dModel: M, seed: 19, name: uniq("plain") });
      const x = tf.tensor2d(rand(T * M, 61), [T, M]);
      const vars = layer.variables();
      // coef = 0 -> weights 0.5 / 0.5: y = 0.5 moe + 0.5 dense
      const got = tf.tidy(() => take(layer.forward(x, ctx()).y));
      const moe = tf.tidy(() => take(plain.forward(x, ctx()).y));
      const d = tf.tidy(() => {
        const h = tf.add(tf.matMul(x, vars["residual.w1"]!), vars["residual.b1"]!);
        const g = tf.mul(tf.mul(h, 0.5), tf.add(tf.erf(tf.mul(h, Math.SQRT1_2)), 1));
        return take(tf.add(tf.matMul(g, vars["residual.w2"]!), vars["residual.b2"]!));
      });
      assertClose(
        got,
        Float32Array.from(got, (_, i) => 0.5 * moe[i]! + 0.5 * d[i]!),
        { rtol: 1e-4, atol: 1e-5 },
      );
      expect(layer.parameterGroups().dense).toHaveLength(6); // gate + 5 residual
      expect(layer.parameterGroups().expert).toHaveLength(4);
      x.dispose();
      layer.dispose();
      plain.dispose();
    }));

  it("a forward + backward step leaves no tensors behind; bad input names the shape", () =>
    run(() => {
      const layer = new MoeLayer(
        { numExperts: 4, dFF: F, router: { type: "topk", k: 2, capacityFactor: 1.25, overflow: "random" } },
        { dModel: M, seed: 23, name: uniq("leak") },
      );
      const x = tf.tensor2d(rand(T * M, 71), [T, M]);
      assertNoLeak(() => {
        tf.tidy(() => {
          const vars = Object.values(layer.variables());
          tf.variableGrads(() => {
            const { y, routing } = layer.forward(x, ctx());
            return tf.add(tf.sum(tf.square(y)), tf.add(routing.auxLoss, routing.zLoss)) as tf.Scalar;
          }, vars);
        });
      });
      expect(() => layer.forward(tf.zeros([3, M + 1]) as tf.Tensor2D, ctx())).toThrow(
        /x must be \[tokens, 6\], got \[3,7\]/,
      );
      x.dispose();
      layer.dispose();
    }));
});

describe("MoeLayer config", () => {
  it("rejects unknown keys and impossible layouts with the layer name", () => {
    expect(
      () =>
        new MoeLayer({ numExperts: 4, dFF: 8, router: { type: "topk" }, experts: 3 } as never, {
          dModel: 4,
          seed: 1,
          name: "enc.3.ffn",
        }),
    ).toThrow(/enc.3.ffn.experts: unknown key/);
    expect(
      () =>
        new MoeLayer(
          { numExperts: 6, dFF: 8, router: { type: "topk" } },
          {
            dModel: 4,
            seed: 1,
            name: uniq("ep"),
            exchange: { worldSize: 4, firstExpert: 0, toExperts: (buf) => ({ buf }), fromExperts: (b) => b },
          },
        ),
    ).toThrow(/numExperts \(6\) must be divisible by the expert-parallel world size \(4\)/);
  });
});

describe("packRows", () => {
  it("drops the capacity padding: each expert's kept rows back to back, in slot order", () => {
    // E = 3, C = 3: expert 0 holds slots 0 and 2 (slot 1 empty), expert 1 none, expert 2 slot 0; one pair dropped.
    const pairs = { token: Int32Array.from([0, 0, 1, 1, 2]), dest: Int32Array.from([2, 6, 0, -1, 8]) };
    const p = packRows(pairs, 3, 3);
    expect(Array.from(p.pairs.dest)).toEqual([1, 2, 0, -1, 3]);
    expect(p.pairs.token).toBe(pairs.token);
    expect(p.rows).toBe(4);
    expect(Array.from(p.segments)).toEqual([0, 2, 0, 2, 0, 1, 2, 2, 2]);
  });
  it("keeps one (empty) row when every pair was dropped, so buffers are never zero-sized", () => {
    const p = packRows({ token: Int32Array.from([0]), dest: Int32Array.from([-1]) }, 2, 4);
    expect(p.rows).toBe(1);
    expect(Array.from(p.segments)).toEqual([0, 0, 0, 0, 0, 1]);
  });
});

describe("expert placement", () => {
  const cfg = { numExperts: 4, dFF: 8, router: { type: "topk" as const, k: 2 } };
  const exchange = (worldSize: number, firstExpert: number) => ({
    worldSize,
    firstExpert,
    toExperts: (buf: tf.Tensor3D) => ({ buf }),
    fromExperts: (b: tf.Tensor3D) => b,
  });

  it("initial expert weights depend only on the global expert id, not the expert-parallel layout", () => {
    const M = 3;
    const full = new MoeLayer(cfg, { dModel: M, seed: 5, name: uniq("ep1") });
    const halves = [0, 2].map(
      (first) => new MoeLayer(cfg, { dModel: M, seed: 5, name: uniq("ep2"), exchange: exchange(2, first) }),
    );
    for (const k of ["w1", "w2"] as const) {
      const all = full.experts[k].dataSync();
      const parts = halves.flatMap((h) => Array.from(h.experts[k].dataSync()));
      expect(parts).toEqual(Array.from(all));
    }
    // Expert 0 of a 1-expert stack draws the same numbers as expert 0 of a 4-expert one.
    const one = new MoeLayer(
      { ...cfg, numExperts: 1, router: { type: "topk", k: 1 } },
      {
        dModel: M,
        seed: 5,
        name: uniq("e1"),
      },
    );
    expect(Array.from(one.experts.w1.dataSync())).toEqual(
      Array.from(full.experts.w1.dataSync()).slice(0, M * 8),
    );
    for (const l of [full, one, ...halves]) l.dispose();
  });

  it("tensor slices hold w1's columns and w2's rows; their partial outputs sum to the full experts'", () => {
    const M = 3;
    const F = 8;
    const full = new MoeLayer(cfg, { dModel: M, seed: 9, name: uniq("tp1") });
    const slices = [0, 1].map(
      (rank) =>
        new MoeLayer(cfg, {
          dModel: M,
          seed: 9,
          name: uniq("tp2"),
          slicing: { size: 2, rank, enter: (x) => x, reduce: (y) => y },
        }),
    );
    expect(slices[0]!.experts.w1.shape).toEqual([4, M, F / 2]);
    expect(slices[1]!.experts.w2.shape).toEqual([4, F / 2, M]);
    expect(slices[0]!.experts.b1!.shape).toEqual([4, F / 2]);
    expect(slices[0]!.experts.slicedAxes()).toEqual({ w1: 1, w2: 0, b1: 0, b2: null });
    tf.tidy(() => {
      const w1 = full.experts.w1;
      const left = tf.slice(w1, [0, 0, 0], [4, M, F / 2]);
      expect(Array.from(slices[0]!.experts.w1.dataSync())).toEqual(Array.from(left.dataSync()));
      // b2 is added once: the slices' outputs without b2 sum to the full output without b2.
      const b2 = tf.tensor2d(rand(4 * M, 3), [4, M]);
      full.experts.b2!.assign(b2);
      for (const s of slices) s.experts.b2!.assign(tf.zerosLike(b2));
      const x = tf.tensor3d(rand(4 * 5 * M, 4), [4, 5, M]);
      const want = full.experts.apply(x);
      const got = tf.add(
        tf.add(slices[0]!.experts.apply(x), slices[1]!.experts.apply(x)),
        tf.reshape(b2, [4, 1, M]),
      );
      assertClose(got.dataSync() as Float32Array, want.dataSync() as Float32Array, {
        rtol: 1e-5,
        atol: 1e-6,
      });
    });
    expect(
      () =>
        new MoeLayer(
          { ...cfg, dFF: 7 },
          {
            dModel: M,
            seed: 1,
            name: "odd.ffn",
            slicing: { size: 2, rank: 0, enter: (x) => x, reduce: (y) => y },
          },
        ),
    ).toThrow(/odd.ffn.experts: dFF \(7\) must be divisible by the tensor-parallel size \(2\)/);
    for (const l of [full, ...slices]) l.dispose();
  });

  it("filledSlots: one past the highest assigned slot per expert; the local exchange passes counts on", () => {
    // E = 3, C = 4: expert 0 slots 0, 1; expert 1 none; expert 2 slots 0 and 2 (a hole at 1); one dropped pair.
    const pairs = { token: Int32Array.from([0, 1, 2, 3, 4]), dest: Int32Array.from([0, 1, 8, -1, 10]) };
    expect(Array.from(filledSlots(pairs, 3, 4))).toEqual([2, 0, 3]);
    const buf = tf.zeros([2, 3, 1]) as tf.Tensor3D;
    expect(LOCAL_EXCHANGE.toExperts(buf, Int32Array.of(1, 2)).counts).toEqual(Int32Array.of(1, 2));
    expect(LOCAL_EXCHANGE.toExperts(buf).counts).toBeUndefined();
    buf.dispose();
  });

  it.each(env.backends)(
    "applyBlocks on %s: valid rows of each (expert, block) as apply() computes them, padding rows zero",
    (backend) =>
      onBackend(backend, () => {
        const [E, W, B, M] = [2, 2, 3, 4];
        const layer = new MoeLayer(
          { numExperts: E, dFF: 6, router: { type: "topk", k: 1 } },
          { dModel: M, seed: 4, name: uniq("blocks") },
        );
        tf.tidy(() => {
          layer.experts.b1!.assign(tf.tensor2d(rand(E * 6, 1), [E, 6]));
          layer.experts.b2!.assign(tf.tensor2d(rand(E * M, 2), [E, M]));
          const buf = tf.tensor3d(rand(E * W * B * M, 3), [E, W * B, M]);
          const counts = Int32Array.of(2, 0, 3, 1); // [E, W]
          const got = layer.experts.applyBlocks(buf, counts).dataSync();
          const dense = layer.experts.apply(buf).dataSync();
          for (let e = 0; e < E; e++) {
            for (let i = 0; i < W; i++) {
              for (let r = 0; r < B; r++) {
                const at = ((e * W + i) * B + r) * M;
                const valid = r < (counts[e * W + i] as number);
                const want = valid ? Array.from(dense.slice(at, at + M)) : [0, 0, 0, 0];
                assertClose(got.slice(at, at + M) as Float32Array, Float32Array.from(want), {
                  rtol: 1e-5,
                  atol: 1e-6,
                });
              }
            }
          }
          expect(() => layer.experts.applyBlocks(buf, Int32Array.of(4, 0, 0, 0))).toThrow(
            /applyBlocks: counts\[0, 0\] = 4 is outside the block of 3 rows/,
          );
        });
        layer.dispose();
      }),
  );
});
