import { parseArgs } from "node:util";

import { BACKEND_CHOICES, type BackendChoice, nativeInfo, useBackend } from "@polymoe/kernels";

import type { Command } from "../registry.js";

export const command: Command = {
  summary: "show the backend PolyMoE will use",
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        backend: { type: "string", default: process.env.POLYMOE_BACKEND ?? "auto" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    });
    if (values.help) {
      console.log(
        `usage: polymoe info [--backend ${BACKEND_CHOICES.join("|")}] [--json]\n` +
          "Selects the backend as training would and prints what was chosen and why.",
      );
      return 0;
    }
    const report = await useBackend(values.backend as BackendChoice);
    const native = nativeInfo();
    if (values.json) {
      console.log(JSON.stringify({ ...report, native }));
      return 0;
    }
    console.log(`backend:   ${report.backend} (requested: ${report.requested})`);
    console.log(`detail:    ${report.detail}`);
    if (report.fallbackReason) console.log(`fallback:  ${report.fallbackReason}`);
    console.log(
      `native:    ${native.available ? `available (${native.simd}, ${native.threads} threads)` : native.reason}`,
    );
    return 0;
  },
};
