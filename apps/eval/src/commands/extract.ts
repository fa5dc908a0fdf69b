// `polymoe extract`: a TaskMoE checkpoint's subnetwork for one task.

import { extractTask } from "@polymoe/eval";

import { failure, parseFlags } from "./common.js";
import type { Command } from "./score.js";

const USAGE = `usage: polymoe extract --checkpoint DIR --task LANG|PAIR --out DIR [--corpus DIR]

Writes the subnetwork of a TaskMoE model that serves one task: each task-routed
MoE layer keeps only the experts its router picks for the task, folded with their
fixed weights into one dense FFN; token-routed layers (hybrid models) stay whole.
The result is a standalone checkpoint (with tokenizer.json) that polymoe eval and
the decoders load without the full model.

  --task LANG|PAIR   a target language (fr) for target-language routing, a pair (en-fr)
                     for pair routing`;

const mb = (b: number) => `${(b / 1024 / 1024).toFixed(2)} MB`;

export const command: Command = {
  summary: "extract a task's subnetwork",
  async run(argv) {
    const values = parseFlags("extract", USAGE, argv, {
      checkpoint: { type: "string" },
      task: { type: "string" },
      out: { type: "string" },
      corpus: { type: "string" },
    });
    if (typeof values === "number") return values;
    for (const req of ["checkpoint", "task", "out"]) {
      if (!values[req]) {
        console.error(`polymoe extract: --${req} is required\n${USAGE.split("\n")[0]}`);
        return 2;
      }
    }
    try {
      const r = await extractTask(
        values.checkpoint as string,
        values.task as string,
        values.out as string,
        values.corpus ? { corpus: values.corpus as string } : {},
      );
      for (const l of r.layers) {
        console.log(
          `${l.layer}: experts ${l.experts.join(", ")} with weights ${l.weights.map((w) => w.toFixed(3)).join(", ")}`,
        );
      }
      console.log(
        `extracted '${values.task}': ${r.parameters.toLocaleString("en-US")} parameters (${((100 * r.parameters) / r.sourceParameters).toFixed(1)}% of ${r.sourceParameters.toLocaleString("en-US")}), ` +
          `${mb(r.bytes)} (full model ${mb(r.sourceBytes)}); read ${mb(r.bytesRead)} of the source -> ${r.dir}`,
      );
      return 0;
    } catch (e) {
      return failure("extract", e);
    }
  },
};
