import { studyCommand } from "@polymoe/app-train";

import type { Command } from "../registry.js";

export const command: Command = {
  summary: "run the TaskMoE comparison study",
  run: (argv) => studyCommand(argv),
};
