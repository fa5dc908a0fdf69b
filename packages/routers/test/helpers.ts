import { setupTestBackends } from "@polymoe/kernels/testing";

import { Rng, type RouteContext } from "../src/index.js";

export const env = setupTestBackends();

export {
  assertClose,
  assertNoLeak,
  finiteDifferences,
  onBackend,
  rand,
  take,
} from "@polymoe/kernels/testing";

export function ctx(over: Partial<RouteContext> = {}): RouteContext {
  return { training: true, rng: new Rng(7), ...over };
}
