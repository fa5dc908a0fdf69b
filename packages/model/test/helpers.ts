import { setupTestBackends } from "@polymoe/kernels/testing";

export const env = setupTestBackends();
export {
  assertClose,
  assertNoLeak,
  finiteDifferences,
  onBackend,
  rand,
  take,
} from "@polymoe/kernels/testing";

let counter = 0;
/** A unique variable-name prefix per layer built in tests (tfjs variable names are global). */
export const uniq = (s: string) => `${s}.${counter++}`;
