import { definePackageBuild } from "@polymoe/tsup-config";

export default definePackageBuild({ entry: ["src/index.ts", "src/testing.ts"] });
