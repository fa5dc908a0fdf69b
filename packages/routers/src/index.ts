// @polymoe/routers: MoE gating as pure functions and routers by name.
export { assignSlots, expertCapacity, type OverflowPolicy, type SlotAssignment } from "./capacity.js";
export {
  ExpertChoiceRouterConfig,
  RouterConfig,
  type RouterConfigInput,
  StaticTaskRouterConfig,
  TaskRouterConfig,
  TemperatureSchedule,
  TopKRouterConfig,
  temperatureAt,
} from "./config.js";
export { RoutingError, type RoutingErrorCode } from "./errors.js";
export {
  type CapacityOptions,
  expertChoiceGating,
  staticTaskGating,
  type TopKGatingOptions,
  taskGating,
  topKGating,
} from "./gating.js";
export { createRouter, parseRouterConfig, ROUTER_NAMES, ROUTERS } from "./registry.js";
export { Rng } from "./rng.js";
export { type Router, type RouterInit, StaticTaskRouter, TaskRouter, TopKRouter } from "./routers.js";
export type { RouteContext, Routing, RoutingMetrics } from "./types.js";
