// Training a tiny real Transformer across ranks (DP, EP, EP+DP, ZeRO-1/2,
// tensor-sliced experts) and its one-process reference. The same rank
// function runs on simulated ranks (test/parallel.test.ts) and under mpirun
// (test-mpi/), so both check the same thing.
//
// Global batch: step s consumes shards s*G .. s*G + G - 1 (G = dp * accumulate
// micro-batches); data rank d takes shards d*acc .. d*acc + acc - 1 of each
// step. The one-process reference runs accumulate = G over the same shards in
// order, so both see the same global batch per update.
import { setupTestBackends } from "@polymoe/kernels/testing";
import { type ModelConfigInput, Transformer } from "@polymoe/model";
import type { Communicator, ParallelConfig } from "@polymoe/parallel";
import * as tf from "@tensorflow/tfjs-core";

import {
  type BatchSource,
  createParallelRuntime,
  Progress,
  type TrainBatch,
  TrainConfig,
  type TrainConfigInput,
  Trainer,
} from "../../src/index.js";
import { SyntheticSource } from "../helpers.js";

/** Position of a ShardSource: micro-batches drawn, and how many make one step. */
interface ShardState {
  position: number;
  accumulate: number;
}

/** Data rank `rank` of `dp` over a deterministic stream of shards (see the file comment). */
export class ShardSource implements BatchSource {
  position = 0;
  private readonly shards = new SyntheticSource(6, 7, 21);

  constructor(
    private rank: number,
    private dp: number,
    readonly accumulate: number,
  ) {}

  private shard(i: number): TrainBatch {
    this.shards.restore({ position: i });
    return this.shards.next().value as TrainBatch;
  }

  next(): IteratorResult<TrainBatch> {
    const acc = this.accumulate;
    const step = Math.floor(this.position / acc);
    const j = this.position % acc;
    this.position++;
    return { done: false, value: this.shard(step * this.dp * acc + this.rank * acc + j) };
  }

  state(): ShardState {
    return { position: this.position, accumulate: this.accumulate };
  }

  restore(s: ShardState): void {
    this.position = (s.position / s.accumulate) * this.accumulate;
  }

  reshard(states: readonly unknown[], rank: number, worldSize: number): void {
    this.rank = rank;
    this.dp = worldSize;
    this.restore(states[0] as ShardState);
  }
}

export const tinyModel: ModelConfigInput = {
  vocabSize: 24,
  dModel: 16,
  heads: 2,
  dFF: 16,
  encoderLayers: 1,
  decoderLayers: 2,
  maxLength: 16,
  dropout: 0,
  moe: {
    // capacityFactor 1: some pairs overflow, so ranks send different counts.
    encoder: { numExperts: 4, router: { type: "topk", k: 2, capacityFactor: 1 } },
    decoder: { numExperts: 4, router: { type: "task", k: 2, numTasks: 3 } },
  },
};

/**
 * Adam with eps = 1e-5: the attention key bias has a true gradient of 0 (a
 * constant added to every key's logit cancels in the softmax), so its
 * computed gradient is rounding noise, which Adam with eps 1e-8 turns into
 * steps of +-lr. Ranks sum gradients in another order than one process, so
 * the noise differs; eps 1e-5 keeps such steps below the 1e-5 tolerance
 * while real gradients (>> 1e-5 here) train as usual.
 */
export const trainConfig = (steps: number, accumulate: number, extra: Partial<TrainConfigInput> = {}) =>
  TrainConfig.parse({
    seed: 3,
    maxSteps: steps,
    accumulate,
    logEvery: 1,
    evalEvery: 0,
    saveEvery: 0,
    labelSmoothing: 0.1,
    optimizer: {
      lr: 2e-3,
      eps: 1e-5,
      weightDecay: 0.01,
      schedule: { type: "constant", warmupSteps: 2 },
      clipNorm: 1,
    },
    ...extra,
  });

const quiet = () => new Progress({ write: () => true } as unknown as NodeJS.WriteStream, false);
let models = 0;

export interface RunSpec {
  name: string;
  parallel: Pick<ParallelConfig, "ep" | "tp" | "zeroStage">;
  steps: number;
  /** Micro-batches per rank per step. */
  accumulate: number;
  runDir: string;
  /** Save every this many steps (0 = only at the end). */
  saveEvery?: number;
  /** Resume from runDir's checkpoint_last (the test put one there). */
  resume?: boolean;
}

export interface RunResult {
  name: string;
  rank: number;
  losses: number[];
  gradNorms: number[];
  comm: { allToAll: number; allReduce: number; allGather: number };
  commCalls: { ep: number; dp: number; edp: number; tp: number };
  lastCheckpoint: string;
  leaked: number;
}

/** One rank: each run in turn (fresh groups, model and trainer), all ranks together. */
export async function trainRuns(world: Communicator, runs: RunSpec[]): Promise<RunResult[]> {
  setupTestBackends();
  await tf.ready();
  const out: RunResult[] = [];
  for (const spec of runs) out.push(await trainRun(world, spec));
  return out;
}

async function trainRun(world: Communicator, spec: RunSpec): Promise<RunResult> {
  const config: ParallelConfig = { backend: "auto", checks: true, bucketMb: 0.001, ...spec.parallel };
  const rt = await createParallelRuntime(world, config, { experts: [4, 4] });
  const model = new Transformer(tinyModel, {
    seed: 7,
    namespace: `rank${world.rank}.${spec.name}.${models++}`,
    exchange: rt.hooks.exchange,
    ...(rt.hooks.slicing ? { slicing: rt.hooks.slicing } : {}),
  });
  const trainer = new Trainer({
    model,
    config: trainConfig(spec.steps, spec.accumulate, { saveEvery: spec.saveEvery ?? 0 }),
    data: new ShardSource(rt.dataRank, rt.dataWorldSize, spec.accumulate),
    runDir: spec.runDir,
    runConfig: { name: spec.name },
    progress: quiet(),
    handleSignals: false,
    parallel: rt,
    ...(spec.resume ? {} : { fresh: true }),
  });
  const losses: number[] = [];
  const gradNorms: number[] = [];
  const comm = { allToAll: 0, allReduce: 0, allGather: 0 };
  const tensorsBefore = tf.memory().numTensors;
  // Drive the loop by hand to see every step's result, then let run() resume and save.
  const summary = await (async () => {
    if (spec.resume) trainer.resume();
    while (trainer.step < spec.steps) {
      const r = await trainer.trainStep();
      losses.push(r.loss);
      gradNorms.push(r.gradNorm);
      const c = r.timings.comm!;
      comm.allToAll += c.allToAll;
      comm.allReduce += c.gradients + c.tensorParallel + c.scalars;
      comm.allGather += c.parameters;
      if (spec.saveEvery && trainer.step % spec.saveEvery === 0) await trainer.save();
    }
    return trainer.save();
  })();
  const g = rt.groups;
  const calls = (c: Communicator) => {
    const s = c.stats();
    return Object.values(s).reduce((n, x) => n + x.calls, 0);
  };
  const result: RunResult = {
    name: spec.name,
    rank: world.rank,
    losses,
    gradNorms,
    comm,
    commCalls: { ep: calls(g.ep), dp: calls(g.dp), edp: calls(g.edp), tp: calls(g.tp) },
    lastCheckpoint: summary,
    // Training and saving leave no tensors behind (resume() moves optimizer state to the host).
    leaked: tf.memory().numTensors - tensorsBefore,
  };
  trainer.dispose();
  model.dispose();
  for (const c of [g.dp, g.ep, g.edp, g.tp]) c.free();
  return result;
}

/**
 * The one-process reference: `accumulate` = G micro-batches per step over the
 * same shards. Returns per-step losses and the trainer (for its model).
 */
export async function referenceRun(
  steps: number,
  G: number,
  runDir: string,
  opts: { resume?: boolean } = {},
): Promise<{ losses: number[]; gradNorms: number[]; model: Transformer; trainer: Trainer }> {
  const model = new Transformer(tinyModel, { seed: 7, namespace: `reference.${models++}` });
  const trainer = new Trainer({
    model,
    config: trainConfig(steps, G),
    data: new ShardSource(0, 1, G),
    runDir,
    runConfig: { name: "reference" },
    progress: quiet(),
    handleSignals: false,
    ...(opts.resume ? {} : { fresh: true }),
  });
  if (opts.resume) trainer.resume();
  const losses: number[] = [];
  const gradNorms: number[] = [];
  while (trainer.step < steps) {
    const r = await trainer.trainStep();
    losses.push(r.loss);
    gradNorms.push(r.gradNorm);
  }
  return { losses, gradNorms, model, trainer };
}
