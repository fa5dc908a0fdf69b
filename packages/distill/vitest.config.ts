import { definePackageConfig } from "@polymoe/vitest-config";

export default definePackageConfig();
