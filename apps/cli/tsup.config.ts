import { definePackageBuild } from "@polymoe/tsup-config";

// Subcommands are separate entries so they load lazily from dist too.
export default definePackageBuild({ entry: ["src/index.ts", "src/commands/*.ts"] });
