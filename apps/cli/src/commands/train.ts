import { trainCommand } from "@polymoe/app-train";

import type { Command } from "../registry.js";

export const command: Command = {
  summary: "train a model",
  run: (argv) => trainCommand(argv),
};
