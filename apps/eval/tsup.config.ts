import { definePackageBuild } from "@polymoe/tsup-config";

// Each subcommand is its own entry so the CLI loads only the one it runs.
export default definePackageBuild({ entry: ["src/index.ts", "src/commands/*.ts"] });
