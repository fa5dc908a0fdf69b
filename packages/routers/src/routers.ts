import {
  add,
  matMul,
  mul,
  randomNormal,
  randomUniform,
  softplus,
  type Tensor2D,
  tidy,
  type Variable,
  variable,
} from "@tensorflow/tfjs-core";

import type {
  ExpertChoiceRouterConfig,
  RouterConfig,
  StaticTaskRouterConfig,
  TaskRouterConfig,
  TopKRouterConfig,
} from "./config.js";
import { temperatureAt } from "./config.js";
import { RoutingError } from "./errors.js";
import { expertChoiceGating, staticTaskGating, taskGating, topKGating } from "./gating.js";
import type { RouteContext, Routing } from "./types.js";

/** A router: gate parameters plus a gating function. */
export interface Router {
  readonly config: RouterConfig;
  readonly numExperts: number;
  /** Trainable gate parameters by name (empty for static routing). */
  readonly variables: Readonly<Record<string, Variable>>;
  /** Whether routing depends on task ids rather than token contents. */
  readonly taskLevel: boolean;
  /**
   * Routes T tokens. x: <float32>[T, dModel] (ignored by task and static
   * routers except for its row count). The returned tensors are the caller's
   * to dispose (or to let an enclosing tf.tidy collect).
   */
  route(x: Tensor2D, ctx: RouteContext): Routing;
  dispose(): void;
}

export interface RouterInit {
  dModel: number;
  numExperts: number;
  /** Seed of the parameter initialisation. */
  seed: number;
  /** Prefix of variable names (unique per layer), e.g. "decoder.layers.1.moe.router". */
  name: string;
  trainable?: boolean;
}

function checkInput(x: Tensor2D, dModel: number): void {
  if (x.rank !== 2 || x.shape[1] !== dModel) {
    throw new RoutingError("SHAPE_MISMATCH", `router: x must be [tokens, ${dModel}], got [${x.shape}]`);
  }
  if (x.dtype !== "float32") {
    throw new RoutingError(
      "INVALID_ARGUMENT",
      `router: x must be float32 (router logits are fp32), got ${x.dtype}`,
    );
  }
}

/** Token-choice top-k router: logits = x W_gate (+ noise) / temperature. */
export class TopKRouter implements Router {
  readonly variables: Record<string, Variable>;
  readonly taskLevel = false;

  constructor(
    readonly config: TopKRouterConfig | ExpertChoiceRouterConfig,
    private readonly init: RouterInit,
  ) {
    const { dModel, numExperts, seed, name } = init;
    const trainable = init.trainable ?? true;
    this.variables = {
      gate: tidy(() =>
        variable(
          randomNormal([dModel, numExperts], 0, config.initStd, "float32", seed),
          trainable,
          `${name}.gate`,
        ),
      ),
    };
    if (config.noise.type === "noisy-topk") {
      this.variables.noise = tidy(() =>
        variable(
          randomNormal([dModel, numExperts], 0, config.initStd, "float32", seed + 1),
          trainable,
          `${name}.noise`,
        ),
      );
    }
  }

  get numExperts(): number {
    return this.init.numExperts;
  }

  route(x: Tensor2D, ctx: RouteContext): Routing {
    checkInput(x, this.init.dModel);
    const temperature = temperatureAt(this.config.temperature, ctx.step);
    const logits = tidy(() => {
      const noise = this.config.noise;
      let input = x;
      if (ctx.training && noise.type === "jitter") {
        input = mul(
          x,
          randomUniform(x.shape, 1 - noise.eps, 1 + noise.eps, "float32", ctx.rng.seed()),
        ) as Tensor2D;
      }
      let l = matMul(input, this.variables.gate as Variable) as Tensor2D;
      if (ctx.training && noise.type === "noisy-topk") {
        const std = softplus(matMul(x, this.variables.noise as Variable));
        l = add(l, mul(randomNormal(l.shape, 0, 1, "float32", ctx.rng.seed()), std)) as Tensor2D;
      }
      return temperature === 1 ? l : (mul(l, 1 / temperature) as Tensor2D);
    });
    try {
      if (this.config.type === "expert-choice") {
        const c = this.config;
        return expertChoiceGating(
          logits,
          {
            k: c.k,
            capacityFactor: ctx.training ? c.capacityFactor : c.evalCapacityFactor,
            minCapacity: c.minCapacity,
          },
          ctx,
          temperature,
        );
      }
      const c = this.config;
      return topKGating(
        logits,
        {
          k: c.k,
          softmaxOrder: c.softmaxOrder,
          renormalize: c.renormalize,
          secondExpertSampling: c.secondExpertSampling,
          capacityFactor: ctx.training ? c.capacityFactor : c.evalCapacityFactor,
          minCapacity: c.minCapacity,
          policy: c.overflow,
        },
        ctx,
        temperature,
      );
    } finally {
      logits.dispose(); // the tape keeps its own reference where gradients need it
    }
  }

  dispose(): void {
    for (const v of Object.values(this.variables)) v.dispose();
  }
}

/**
 * Task-level router: logits per task = taskEmbedding W_gate, shared by every
 * token of the task. Noise, if any, is drawn per task.
 */
export class TaskRouter implements Router {
  readonly variables: Record<string, Variable>;
  readonly taskLevel = true;

  constructor(
    readonly config: TaskRouterConfig,
    private readonly init: RouterInit,
  ) {
    const { numExperts, seed, name } = init;
    const trainable = init.trainable ?? true;
    const d = config.taskEmbedDim;
    this.variables = {
      taskEmbedding: tidy(() =>
        variable(
          randomNormal([config.numTasks, d], 0, 1, "float32", seed),
          trainable,
          `${name}.taskEmbedding`,
        ),
      ),
      gate: tidy(() =>
        variable(
          randomNormal([d, numExperts], 0, config.initStd, "float32", seed + 1),
          trainable,
          `${name}.gate`,
        ),
      ),
    };
    if (config.noise.type === "noisy-topk") {
      this.variables.noise = tidy(() =>
        variable(
          randomNormal([d, numExperts], 0, config.initStd, "float32", seed + 2),
          trainable,
          `${name}.noise`,
        ),
      );
    }
  }

  get numExperts(): number {
    return this.init.numExperts;
  }

  route(x: Tensor2D, ctx: RouteContext): Routing {
    if (ctx.taskIds && ctx.taskIds.length !== x.shape[0]) {
      throw new RoutingError(
        "SHAPE_MISMATCH",
        `task router: taskIds has ${ctx.taskIds.length} entries but x has ${x.shape[0]} tokens`,
      );
    }
    const c = this.config;
    const temperature = temperatureAt(c.temperature, ctx.step);
    const logits = tidy(() => {
      let emb = this.variables.taskEmbedding as Variable as Tensor2D;
      if (ctx.training && c.noise.type === "jitter") {
        emb = mul(
          emb,
          randomUniform(emb.shape, 1 - c.noise.eps, 1 + c.noise.eps, "float32", ctx.rng.seed()),
        ) as Tensor2D;
      }
      let l = matMul(emb, this.variables.gate as Variable) as Tensor2D;
      if (ctx.training && c.noise.type === "noisy-topk") {
        const std = softplus(
          matMul(this.variables.taskEmbedding as Variable, this.variables.noise as Variable),
        );
        l = add(l, mul(randomNormal(l.shape, 0, 1, "float32", ctx.rng.seed()), std)) as Tensor2D;
      }
      return temperature === 1 ? l : (mul(l, 1 / temperature) as Tensor2D);
    });
    try {
      return taskGating(
        logits,
        {
          k: c.k,
          softmaxOrder: c.softmaxOrder,
          renormalize: c.renormalize,
          secondExpertSampling: c.secondExpertSampling,
          capacityFactor: ctx.training ? c.capacityFactor : c.evalCapacityFactor,
          minCapacity: c.minCapacity,
          policy: c.overflow,
        },
        { ...ctx, numTasks: ctx.numTasks ?? c.numTasks },
        temperature,
      );
    } finally {
      logits.dispose();
    }
  }

  dispose(): void {
    for (const v of Object.values(this.variables)) v.dispose();
  }
}

/** Fixed task -> experts assignment; no parameters (a baseline). */
export class StaticTaskRouter implements Router {
  readonly variables = {};
  readonly taskLevel = true;

  constructor(
    readonly config: StaticTaskRouterConfig,
    private readonly init: RouterInit,
  ) {}

  get numExperts(): number {
    return this.init.numExperts;
  }

  route(x: Tensor2D, ctx: RouteContext): Routing {
    if (ctx.taskIds && ctx.taskIds.length !== x.shape[0]) {
      throw new RoutingError(
        "SHAPE_MISMATCH",
        `static task router: taskIds has ${ctx.taskIds.length} entries but x has ${x.shape[0]} tokens`,
      );
    }
    const c = this.config;
    return staticTaskGating(
      c.numTasks,
      this.init.numExperts,
      {
        k: c.k,
        capacityFactor: ctx.training ? c.capacityFactor : c.evalCapacityFactor,
        minCapacity: c.minCapacity,
        policy: c.overflow,
      },
      { ...ctx, numTasks: ctx.numTasks ?? c.numTasks },
    );
  }

  dispose(): void {}
}
