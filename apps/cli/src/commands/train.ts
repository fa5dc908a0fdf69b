import { HELP, trainCommand } from "@polymoe/app-train";

import type { Command } from "../registry.js";

export const command: Command = {
  summary: "train a model",
  run: (argv) =>
    argv.includes("--help") || argv.includes("-h")
      ? (console.log(HELP), Promise.resolve(0))
      : trainCommand(argv),
};
