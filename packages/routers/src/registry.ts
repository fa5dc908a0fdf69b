import { nearest, parseConfig } from "@polymoe/schema";
import type { z } from "zod";

import {
  ExpertChoiceRouterConfig,
  type RouterConfig,
  type RouterConfigInput,
  StaticTaskRouterConfig,
  TaskRouterConfig,
  TopKRouterConfig,
} from "./config.js";
import { RoutingError } from "./errors.js";
import { type Router, type RouterInit, StaticTaskRouter, TaskRouter, TopKRouter } from "./routers.js";

interface RouterEntry {
  summary: string;
  schema: z.ZodType;
  create: (config: RouterConfig, init: RouterInit) => Router;
}

/** Every router by name, with its config schema. */
export const ROUTERS: Readonly<Record<RouterConfig["type"], RouterEntry>> = {
  topk: {
    summary: "token-choice top-k (Switch: k=1, GShard: k=2)",
    schema: TopKRouterConfig,
    create: (c, i) => new TopKRouter(c as z.output<typeof TopKRouterConfig>, i),
  },
  task: {
    summary: "task-level routing through a learned task embedding (TaskMoE)",
    schema: TaskRouterConfig,
    create: (c, i) => new TaskRouter(c as z.output<typeof TaskRouterConfig>, i),
  },
  "static-task": {
    summary: "fixed task -> experts assignment (baseline)",
    schema: StaticTaskRouterConfig,
    create: (c, i) => new StaticTaskRouter(c as z.output<typeof StaticTaskRouterConfig>, i),
  },
  "expert-choice": {
    summary: "each expert picks its top-C tokens (expert choice)",
    schema: ExpertChoiceRouterConfig,
    create: (c, i) => new TopKRouter(c as z.output<typeof ExpertChoiceRouterConfig>, i),
  },
};

export const ROUTER_NAMES = Object.keys(ROUTERS) as (keyof typeof ROUTERS)[];

/**
 * Validates a router config (strict: unknown keys fail with the nearest valid
 * name) and returns it with defaults filled in. prefix names its place in a
 * larger config, e.g. "model.decoder.layers[1].router".
 */
export function parseRouterConfig(input: RouterConfigInput | unknown, prefix = "router"): RouterConfig {
  const type = (input as { type?: unknown } | null)?.type;
  if (typeof type !== "string" || !(type in ROUTERS)) {
    const near = typeof type === "string" ? nearest(type, ROUTER_NAMES) : undefined;
    throw new RoutingError(
      "UNKNOWN_ROUTER",
      `${prefix}.type: unknown router ${JSON.stringify(type)}${near ? ` (did you mean '${near}'?)` : ""}; valid: ${ROUTER_NAMES.join(", ")}`,
    );
  }
  return parseConfig(ROUTERS[type as keyof typeof ROUTERS].schema, input, { prefix }) as RouterConfig;
}

/** Builds a router from a (possibly partial) config. */
export function createRouter(input: RouterConfigInput | RouterConfig, init: RouterInit): Router {
  const config = parseRouterConfig(input, `${init.name}`);
  return ROUTERS[config.type].create(config, init);
}
