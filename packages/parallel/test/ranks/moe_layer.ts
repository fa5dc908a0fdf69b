// The real MoE layer (@polymoe/model) expert-parallel and tensor-sliced over
// ranks, and its one-process reference: the same layer with every expert,
// unsliced, run once per data-parallel rank's tokens. Forward outputs, input
// gradients and parameter gradients must agree.
import { MoeLayer, type MoeLayerConfigInput } from "@polymoe/model";
import { Rng } from "@polymoe/routers";
import * as tf from "@tensorflow/tfjs-core";

import { type Communicator, createProcessGroups, modelParallelHooks } from "../../src/index.js";
import { backendReady } from "./backend.js";
import { randomArray } from "./util.js";

export interface MoeLayerArgs {
  ep: number;
  tp: number;
  experts: number;
  /** Tokens of data-parallel rank d: tokens + d (so capacities differ across ranks). */
  tokens: number;
  dModel: number;
  dFF: number;
  seed: number;
  capacityFactor: number;
}

export interface LayerResult {
  y: number[];
  dx: number[];
  /** Gradients by variable short name ("experts.w1", "router.gate", ...), as this rank holds them. */
  grads: Record<string, number[]>;
}

const config = (a: MoeLayerArgs): MoeLayerConfigInput => ({
  numExperts: a.experts,
  dFF: a.dFF,
  activation: "gelu",
  router: { type: "topk", k: 2, capacityFactor: a.capacityFactor },
});

/** Tokens and loss weights of data-parallel rank d. */
export function layerInputs(a: MoeLayerArgs, d: number) {
  const T = a.tokens + d;
  return {
    T,
    x: randomArray(T * a.dModel, a.seed + 10 * d),
    c: randomArray(T * a.dModel, a.seed + 10 * d + 5),
  };
}

/** loss = sum(y * c): y, dloss/dx and dloss/dvariable for every variable of `layer`. */
function step(layer: MoeLayer, a: MoeLayerArgs, d: number): LayerResult {
  const { T, x, c } = layerInputs(a, d);
  return tf.tidy(() => {
    const vars = layer.variables();
    const names = Object.keys(vars);
    const xt = tf.tensor2d(x, [T, a.dModel]);
    const ct = tf.tensor2d(c, [T, a.dModel]);
    let y: number[] = [];
    const f = () => {
      const out = layer.forward(xt, { training: true, rng: new Rng(1) });
      y = Array.from(out.y.dataSync());
      return tf.sum(tf.mul(out.y, ct)) as tf.Scalar;
    };
    // One pass for the parameters, one for the input (each runs the collectives on every rank).
    const { grads } = tf.variableGrads(
      f,
      names.map((n) => vars[n]!),
    );
    const dx = tf.grad((v: tf.Tensor) =>
      tf.sum(tf.mul(layer.forward(v as tf.Tensor2D, { training: true, rng: new Rng(1) }).y, ct)),
    )(xt);
    const out: Record<string, number[]> = {};
    for (const n of names) out[n] = Array.from(grads[vars[n]!.name]!.dataSync());
    return { y, dx: Array.from(dx.dataSync()), grads: out };
  });
}

let layers = 0;

/** One rank: the layer under each (ep, tp) in turn on this rank's tokens (one worker start for all). */
export async function moeLayerRank(world: Communicator, list: MoeLayerArgs[]) {
  await backendReady();
  const out = [];
  for (const a of list) out.push(await layerRank(world, a));
  return out;
}

async function layerRank(world: Communicator, a: MoeLayerArgs) {
  const groups = await createProcessGroups(world, { ep: a.ep, tp: a.tp, experts: a.experts });
  const hooks = modelParallelHooks(groups);
  const name = `rank.moe.${layers++}`;
  const layer = new MoeLayer(config(a), {
    dModel: a.dModel,
    seed: a.seed,
    name,
    exchange: hooks.exchange({ name, numExperts: a.experts }),
    ...(hooks.slicing ? { slicing: hooks.slicing } : {}),
  });
  const coords = groups.layout.coords(world.rank);
  const before = tf.memory().numTensors;
  const result = step(layer, a, coords.dpIndex);
  const leaked = tf.memory().numTensors - before;
  layer.dispose();
  return {
    ...result,
    coords,
    firstExpert: layer.exchange.firstExpert,
    localExperts: layer.experts.numExperts,
    leaked,
    comm: hooks.clock.stats(),
  };
}

/** The one-process reference for data-parallel rank d: every expert, unsliced. */
export function moeLayerReference(a: MoeLayerArgs, d: number): LayerResult {
  const layer = new MoeLayer(config(a), { dModel: a.dModel, seed: a.seed, name: `ref.moe.${layers++}` });
  const r = step(layer, a, d);
  layer.dispose();
  return r;
}
