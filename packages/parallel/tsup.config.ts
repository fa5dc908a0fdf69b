import { definePackageBuild } from "@polymoe/tsup-config";

// The simulated backend starts its ranks from a separate worker entry, which must
// sit next to index.js in dist just as it sits next to index.ts in src.
export default definePackageBuild({ entry: ["src/index.ts", "src/simulated_worker.ts"] });
