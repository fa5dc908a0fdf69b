import { definePackageBuild } from "@polymoe/tsup-config";

export default definePackageBuild();
