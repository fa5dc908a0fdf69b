import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { adamStep } from "@polymoe/kernels";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { OffloadConfig, OffloadError, OffloadedAdamW } from "../src/index.js";
import { adamStepOpsOrder } from "../src/ops_order.js";
import { env, onBackend, rand, tempDir } from "./helpers.js";

const SHAPES: Record<string, number[]> = {
  "enc.w": [7, 5],
  "enc.ln.g": [5],
  "moe.experts.w1": [4, 6, 3],
  "moe.experts.b1": [4, 3],
};
const EXPERTS = new Map([
  ["moe.experts.w1", { localExperts: 4 }],
  ["moe.experts.b1", { localExperts: 4 }],
]);
const decayOf = (wd: number) => (name: string) => (name.endsWith(".g") || name.endsWith(".b1") ? 0 : wd);
const hyper = { type: "adamw" as const, betas: [0.9, 0.98] as const, eps: 1e-8 };
const paramBytes = Object.values(SHAPES).reduce((s, sh) => s + 4 * sh.reduce((a, b) => a * b, 1), 0);

let counter = 0;
function makeParams(): Map<string, tf.Variable> {
  const id = counter++;
  return new Map(
    Object.entries(SHAPES).map(([name, shape], i) => [
      name,
      tf.variable(
        tf.tensor(
          rand(
            shape.reduce((a, b) => a * b, 1),
            11 + i,
          ),
          shape,
        ),
        true,
        `${name}.${id}`,
      ),
    ]),
  );
}

/** Gradients of step `t`; expert 2 gets none on odd steps (no tokens routed to it), expert 3 never. */
function gradsAt(t: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  Object.entries(SHAPES).forEach(([name, shape], i) => {
    const g = rand(
      shape.reduce((a, b) => a * b, 1),
      1000 * t + i,
      0.5,
    );
    if (EXPERTS.has(name)) {
      const per = g.length / 4;
      g.fill(0, 3 * per, 4 * per);
      if (t % 2 === 1) g.fill(0, 2 * per, 3 * per);
    }
    out.set(name, g);
  });
  return out;
}

function offloadConfig(dir: string, storeBytes: number, experts: "dense" | "routed" = "dense") {
  return OffloadConfig.parse({
    dir,
    hostMemoryGB: (2 * paramBytes + storeBytes) / 2 ** 30,
    reserveGB: 0,
    experts,
    enforceBudget: false,
  });
}

/** Runs `steps` updates of `opt` with gradsAt(1..steps); returns the final parameter values. */
function train(
  opt: { apply: OffloadedAdamW["apply"] },
  params: Map<string, tf.Variable>,
  from: number,
  to: number,
) {
  for (let t = from; t <= to; t++) {
    const g = gradsAt(t);
    tf.tidy(() => {
      const grads = new Map([...g].map(([n, x]) => [n, tf.tensor(x, SHAPES[n]) as tf.Tensor]));
      opt.apply(params, grads, 1e-2 * (1 + t / 10), 0.7);
    });
  }
}

/** The in-memory reference: one update per whole parameter (fused kernel on native, tfjs-ops order elsewhere). */
function reference(steps: number, wd: number): Map<string, Float32Array> {
  const native = tf.getBackend() === "polymoe-native";
  const state = new Map(
    Object.entries(SHAPES).map(([name, shape], i) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return [name, { param: rand(n, 11 + i), m: new Float32Array(n), v: new Float32Array(n) }];
    }),
  );
  for (let t = 1; t <= steps; t++) {
    for (const [name, grad] of gradsAt(t)) {
      const hp = {
        lr: 1e-2 * (1 + t / 10),
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-8,
        weightDecay: decayOf(wd)(name),
        decoupled: true,
        step: t,
        gradScale: 0.7,
      };
      const st = state.get(name)!;
      if (native) adamStep({ ...st, grad }, hp);
      else adamStepOpsOrder(st.param, grad, st.m, st.v, hp);
    }
  }
  return new Map([...state].map(([n, s]) => [n, s.param]));
}

describe.each(env.backends)("OffloadedAdamW on %s", (backend) => {
  const run = <T>(f: () => T) => onBackend(backend, f);

  it("dense: 10 steps through a store that holds two slices end equal to in-memory Adam, paging through disk", () =>
    run(() => {
      const params = makeParams();
      // Room for the moments (and master weights off native) of about two expert slices.
      const opt = new OffloadedAdamW({
        optimizer: hyper,
        offload: offloadConfig(tempDir(), 3 * 4 * 24 * 2),
        params,
        decayOf: decayOf(0.1),
        experts: EXPERTS,
      });
      let read = 0;
      let written = 0;
      for (let t = 1; t <= 10; t++) {
        train(opt, params, t, t);
        const s = opt.lastStep()!;
        read += s.bytesRead;
        written += s.bytesWritten;
        expect(s.hostBytes).toBeLessThanOrEqual(opt.plan.storeBudget);
        expect(s.expertsUpdated).toBe(4); // dense: every expert (w1 and b1 of an expert share one entry)
      }
      expect(read).toBeGreaterThan(0);
      expect(written).toBeGreaterThan(0);
      const want = reference(10, 0.1);
      for (const [name, p] of params) {
        expect(Array.from(p.dataSync()), name).toEqual(Array.from(want.get(name)!));
      }
      opt.dispose();
      for (const p of params.values()) p.dispose();
    }));

  it("routed: experts without tokens are not paged in and keep their parameters and moments (lazy Adam)", () =>
    run(() => {
      const params = makeParams();
      const before = new Map([...params].map(([n, p]) => [n, Float32Array.from(p.dataSync())]));
      const opt = new OffloadedAdamW({
        optimizer: hyper,
        offload: offloadConfig(tempDir(), 1 << 20, "routed"),
        params,
        decayOf: decayOf(0.1),
        experts: EXPERTS,
      });
      train(opt, params, 1, 1);
      // Step 1 is odd: experts 2 and 3 had no tokens (one entry per expert holds its w1 and b1).
      expect(opt.lastStep()).toMatchObject({ expertsUpdated: 2, expertsSkipped: 2 });
      train(opt, params, 2, 3);
      const w1 = params.get("moe.experts.w1")!.dataSync();
      const per = 18;
      const w0 = before.get("moe.experts.w1")!;
      // Expert 3 never routed: untouched, moments zero. Expert 0 updated.
      expect(Array.from(w1.subarray(3 * per))).toEqual(Array.from(w0.subarray(3 * per)));
      expect(Array.from(w1.subarray(0, per))).not.toEqual(Array.from(w0.subarray(0, per)));
      const st = opt.state();
      expect(
        st.tensors
          .get("moe.experts.w1.m")!
          .values.subarray(3 * per)
          .every((x) => x === 0),
      ).toBe(true);
      expect(st.step).toBe(3);
      // Dense parameters are updated as usual.
      expect(Array.from(params.get("enc.w")!.dataSync())).not.toEqual(Array.from(before.get("enc.w")!));
      opt.dispose();
      for (const p of params.values()) p.dispose();
    }));

  it("state() and load() round-trip: a resumed optimizer continues exactly", () =>
    run(() => {
      const mk = (params: Map<string, tf.Variable>) =>
        new OffloadedAdamW({
          optimizer: hyper,
          offload: offloadConfig(tempDir(), 4 * 200),
          params,
          decayOf: decayOf(0.05),
          experts: EXPERTS,
        });
      const a = makeParams();
      const optA = mk(a);
      train(optA, a, 1, 4);
      const saved = optA.state();
      const savedParams = new Map([...a].map(([n, p]) => [n, Float32Array.from(p.dataSync())]));
      train(optA, a, 5, 7);
      const b = makeParams();
      for (const [n, p] of b) p.assign(tf.tensor(savedParams.get(n)!, SHAPES[n]));
      const optB = mk(b);
      optB.load(saved, b);
      expect(optB.step).toBe(4);
      train(optB, b, 5, 7);
      for (const [n, p] of a) expect(Array.from(b.get(n)!.dataSync()), n).toEqual(Array.from(p.dataSync()));
      expect(() =>
        optB.load({ step: 1, tensors: new Map([["nope.m", { shape: [1], values: new Float32Array(1) }]]) }),
      ).toThrow(
        new OffloadError(
          "STATE_MISMATCH",
          "optimizer state has 'nope.m', which matches no parameter of this model",
        ),
      );
      expect(() =>
        optB.load({
          step: 1,
          tensors: new Map([["enc.w.v", { shape: [5, 7], values: new Float32Array(35) }]]),
        }),
      ).toThrow(/optimizer state 'enc.w.v' has shape \[5,7\] but parameter enc.w is \[7,5\]/);
      for (const o of [optA, optB]) o.dispose();
      for (const p of [...a.values(), ...b.values()]) p.dispose();
    }));
});

describe("OffloadedAdamW: bad input", () => {
  it("a budget below the minimum names the figure needed", () => {
    const params = makeParams();
    const native = tf.getBackend() === "polymoe-native";
    const ws = (native ? 2 : 3) * 4 * 35; // largest slice: enc.w, 35 floats
    const need = 2 * paramBytes + ws + 0.25 * 2 ** 30;
    expect(
      () =>
        new OffloadedAdamW({
          optimizer: hyper,
          offload: OffloadConfig.parse({ dir: tempDir(), hostMemoryGB: 0.1, reserveGB: 0.25 }),
          params,
          decayOf: decayOf(0),
          experts: EXPERTS,
        }),
    ).toThrow(
      new OffloadError(
        "BUDGET_TOO_SMALL",
        `offload.hostMemoryGB is 0.1 but this model needs at least ${(need / 2 ** 30).toFixed(3)} GB of host memory: ` +
          "4.6e-7 GB (496 bytes) of parameters, 4.6e-7 GB (496 bytes) of gradients, " +
          `${(ws / 2 ** 30).toPrecision(2)} GB (${ws} bytes) for the largest optimizer-state slice and offload.reserveGB 0.25; ` +
          "set offload.hostMemoryGB to 0.251 or more (or use a smaller model)",
      ),
    );
    expect(() => OffloadConfig.parse({ dir: "x", hostMemoryGB: 1, expert: "routed" })).toThrow(/expert/);
    expect(() => OffloadConfig.parse({ dir: "x", hostMemoryGB: 0 })).toThrow();
    for (const p of params.values()) p.dispose();
  });

  it("an expert parameter whose axis 0 is not the expert count is refused", () => {
    const params = makeParams();
    expect(
      () =>
        new OffloadedAdamW({
          optimizer: hyper,
          offload: offloadConfig(tempDir(), 1000),
          params,
          decayOf: decayOf(0),
          experts: new Map([["enc.w", { localExperts: 5 }]]),
        }),
    ).toThrow(/expert parameter enc.w has shape \[7,5\] but 5 experts were given/);
    for (const p of params.values()) p.dispose();
  });

  const root = process.getuid?.() === 0;
  it.skipIf(!root)(
    `a disk too small for the state that spills is refused up front${root ? "" : " [skipped: needs root]"}`,
    () => {
      const dir = tempDir("offload-small-");
      if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=4k", "tmpfs", dir]).status !== 0) return;
      // Two 4096-float parameters; the store holds one's state (the working set), the other's spills.
      const params = new Map(
        ["a.w", "b.w"].map((n) => [n, tf.variable(tf.zeros([4096]), true, `${n}.${counter++}`)] as const),
      );
      const perElement = tf.getBackend() === "polymoe-native" ? 2 : 3;
      try {
        expect(
          () =>
            new OffloadedAdamW({
              optimizer: hyper,
              offload: OffloadConfig.parse({
                dir,
                hostMemoryGB: (2 * 32768 + perElement * 16384) / 2 ** 30,
                reserveGB: 0,
              }),
              params,
              decayOf: decayOf(0),
            }),
        ).toThrow(
          new RegExp(
            `offload.dir ${dir} has .* free but .* of optimizer state will not fit in the host budget`,
          ),
        );
      } finally {
        spawnSync("umount", [dir]);
        rmSync(dir, { recursive: true, force: true });
        for (const p of params.values()) p.dispose();
      }
    },
  );
});

describe("adamStepOpsOrder (the update off the native backend)", () => {
  for (const [type, wd] of [
    ["adamw", 0.1],
    ["adam", 0.05],
  ] as const) {
    it(`${type}: bitwise equal to the same update in tfjs ops on cpu, and within 1e-6 of the fused kernel`, () =>
      onBackend("cpu", () => {
        const n = 513;
        const p0 = rand(n, 1);
        const ours = { p: Float32Array.from(p0), m: new Float32Array(n), v: new Float32Array(n) };
        const fused = { p: Float32Array.from(p0), m: new Float32Array(n), v: new Float32Array(n) };
        let p = tf.tensor1d(p0);
        let m = tf.zeros([n]);
        let v = tf.zeros([n]);
        for (let step = 1; step <= 6; step++) {
          const g0 = rand(n, 40 + step, 0.2);
          const hp = {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weightDecay: wd,
            decoupled: type === "adamw",
            step,
            gradScale: 0.5,
          };
          adamStepOpsOrder(ours.p, g0, ours.m, ours.v, hp);
          adamStep({ param: fused.p, grad: g0, m: fused.m, v: fused.v }, hp);
          const [p1, m1, v1] = tf.tidy(() => {
            let g = tf.mul(tf.tensor1d(g0), 0.5);
            if (type === "adam") g = tf.add(g, tf.mul(p, wd));
            const mm = tf.add(tf.mul(m, 0.9), tf.mul(g, 1 - 0.9));
            const vv = tf.add(tf.mul(v, 0.98), tf.mul(tf.square(g), 1 - 0.98));
            let u = tf.div(tf.div(mm, 1 - 0.9 ** step), tf.add(tf.sqrt(tf.div(vv, 1 - 0.98 ** step)), 1e-8));
            if (type === "adamw") u = tf.add(u, tf.mul(p, wd));
            return [tf.sub(p, tf.mul(u, 1e-3)), mm, vv];
          });
          for (const t of [p, m, v]) t.dispose();
          [p, m, v] = [p1!, m1!, v1!];
        }
        expect(Array.from(ours.p)).toEqual(Array.from(p.dataSync()));
        expect(Array.from(ours.m)).toEqual(Array.from(m.dataSync()));
        expect(Array.from(ours.v)).toEqual(Array.from(v.dataSync()));
        for (let i = 0; i < n; i++)
          expect(Math.abs((ours.p[i] as number) - (fused.p[i] as number))).toBeLessThan(1e-6);
        for (const t of [p, m, v]) t.dispose();
      }));
  }
});
