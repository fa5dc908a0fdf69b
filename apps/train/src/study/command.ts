// `polymoe study --config FILE`: the TaskMoE comparison study, resumable stage by stage.
import { parseArgs } from "node:util";

import { ConfigError } from "@polymoe/schema";

import type { CommandIO } from "../command.js";
import { readStudyConfig } from "./config.js";
import { readDone } from "./stages.js";
import { runStudy, StudyError, studyStages } from "./study.js";

export const STUDY_HELP = `usage: polymoe study --config FILE [--until STAGE] [--status]

Runs the Task-level MoE comparison study as cached stages under the config's dir:
  dense, tokenmoe, taskmoe   train the three models at equal compute per token
  student                    distil the TokenMoE into a dense student the size of an
                             extracted TaskMoE subnetwork (word-level KD by default)
  extract                    extract the TaskMoE's subnetwork of every task
  prune                      prune the TokenMoE to the most-used experts per layer
  eval-*                     evaluate every model on the same held-out splits
  report                     <dir>/report/results.md with tables and plots

Each stage records a done-marker holding the hash of its config chained with the
previous stage's; running the same command again skips finished stages and
continues an unfinished one (training resumes from its last checkpoint). Changing
a stage's config reruns it and every later stage. Ctrl-C during training saves a
checkpoint and stops; rerun to continue.

  --config FILE    the study config (apps/train/configs/study-small.json, study-base.json)
  --until STAGE    stop after this stage
  --status         list the stages and whether each is done, then exit`;

/** \`polymoe study ...\`; returns the exit code. */
export async function studyCommand(
  argv: readonly string[],
  io: CommandIO = { log: console.log, error: console.error },
): Promise<number> {
  let values: { config?: string; until?: string; status?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        config: { type: "string" },
        until: { type: "string" },
        status: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
  } catch (e) {
    io.error(`polymoe study: ${(e as Error).message}`);
    return 2;
  }
  if (values.help) {
    io.log(STUDY_HELP);
    return 0;
  }
  if (!values.config) {
    io.error("polymoe study: --config FILE is required (e.g. apps/train/configs/study-small.json)");
    return 2;
  }
  try {
    const { source, config } = readStudyConfig(values.config);
    if (values.status) {
      for (const s of studyStages(config, source)) {
        const done = readDone(config.dir, s.name);
        io.log(
          `${s.name.padEnd(16)} ${done ? `done ${done.finishedAt} (${done.seconds.toFixed(0)} s, key ${done.key})` : "not done"}`,
        );
      }
      return 0;
    }
    io.log(`study: ${source} -> ${config.dir}`);
    const outputs = await runStudy(config, {
      log: io.log,
      source,
      ...(values.until ? { until: values.until } : {}),
    });
    const report = outputs.report as { file: string } | undefined;
    io.log(report ? `study complete: ${report.file}` : `study stopped after ${values.until}`);
    return 0;
  } catch (e) {
    if (e instanceof StudyError && e.code === "INTERRUPTED") {
      io.error(`polymoe study: ${e.message}; run the same command to continue`);
      return 130;
    }
    if (e instanceof ConfigError) {
      io.error(`polymoe study: ${e.message}`);
      return 2;
    }
    const err = e as { name?: string; code?: string; message: string };
    if (err.code && err.name && /Error$/.test(err.name) && err.name !== "Error") {
      io.error(`polymoe study: ${err.message}`);
      return 1;
    }
    throw e;
  }
}
