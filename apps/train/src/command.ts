import { ConfigError, defaultsUsed } from "@polymoe/schema";

import { readConfigFile, resolveRunConfig, SHIPPED_CONFIGS } from "./config.js";
import { parseOverrides } from "./overrides.js";
import { runTraining } from "./run.js";

export const HELP = `usage: polymoe train --config NAME|FILE [--section.key value ...] [options]

Trains a multitask multilingual translation model (dense, TokenMoE or TaskMoE)
from one JSON config: data (a prepared corpus, built first if missing), model,
train (optimizer, schedule, losses, checkpoints) and run (directory, backend).
Resumes from <run.dir>/checkpoints/checkpoint_last when it exists.

With a distill section the model is a dense student of a teacher checkpoint:
  "distill": { "mode": "word", "teacher": "runs/quick-tokenmoe", "alpha": 0.5,
               "temperature": 1, "cache": { "dir": "...", "topK": 8 } }
  "distill": { "mode": "sequence", "teacher": "...", "beamSize": 4 }
(word: KL to the teacher's softened distribution mixed with the label loss;
sequence: train on the teacher's beam outputs; see quick-distill*.json).

  --config NAME|FILE     a shipped config (${SHIPPED_CONFIGS.join(", ")}) or a JSON file
  --a.b.c VALUE          override any config field (JSON values: --train.maxSteps 200)
  --fresh                ignore existing checkpoints in the run directory
  --reset-optimizer      resume weights only: fresh optimizer moments and step count
  --reset-dataloader     resume without the data position (start the stream again)

Precedence: flags > config file > defaults. Ctrl-C or SIGTERM saves a checkpoint
and exits 0; run the same command to continue.`;

export interface CommandIO {
  log: (line: string) => void;
  error: (line: string) => void;
}

/** `polymoe train ...`; returns the exit code. */
export async function trainCommand(
  argv: readonly string[],
  io: CommandIO = { log: console.log, error: console.error },
): Promise<number> {
  let parsed: ReturnType<typeof parseOverrides>;
  try {
    parsed = parseOverrides(argv);
  } catch (e) {
    io.error(`polymoe train: ${(e as Error).message}`);
    return 2;
  }
  const flags = new Set<string>();
  let configName: string | undefined;
  for (let i = 0; i < parsed.rest.length; i++) {
    const f = parsed.rest[i] as string;
    if (f === "--config") configName = parsed.rest[++i];
    else if (f.startsWith("--config=")) configName = f.slice("--config=".length);
    else if (["--fresh", "--reset-optimizer", "--reset-dataloader", "--help", "-h"].includes(f)) flags.add(f);
    else {
      io.error(`polymoe train: unknown option '${f}' (polymoe train --help lists them)`);
      return 2;
    }
  }
  if (flags.has("--help") || flags.has("-h")) {
    io.log(HELP);
    return 0;
  }
  if (!configName) {
    io.error(
      `polymoe train: --config is required (a shipped config: ${SHIPPED_CONFIGS.join(", ")}, or a JSON file)`,
    );
    return 2;
  }
  try {
    const { source, value } = readConfigFile(configName);
    const config = resolveRunConfig(value, parsed.overrides, source);
    const input = JSON.parse(JSON.stringify({ ...(value as object) }));
    const given = JSON.parse(JSON.stringify(parsed.overrides));
    io.log(`config: ${source}${Object.keys(given).length ? ` + overrides ${JSON.stringify(given)}` : ""}`);
    io.log(`resolved: ${JSON.stringify(config)}`);
    const defaults = defaultsUsed({ ...input, ...given, train: { ...input.train, ...given.train } }, config);
    if (defaults.length > 0) io.log(`defaults used: ${defaults.join(", ")}`);
    const summary = await runTraining(config, {
      source,
      log: io.log,
      ...(flags.has("--fresh") ? { fresh: true } : {}),
      ...(flags.has("--reset-optimizer") ? { resetOptimizer: true } : {}),
      ...(flags.has("--reset-dataloader") ? { resetDataloader: true } : {}),
    });
    io.log(
      `${summary.stoppedBy === "signal" ? "stopped by signal" : "done"}: ${summary.steps} steps` +
        `${summary.resumedFrom ? ` (resumed from ${summary.resumedFrom})` : ""}, ${summary.tokens.toLocaleString("en-US")} target tokens in ` +
        `${summary.seconds.toFixed(0)} s (${Math.round(summary.tokens / Math.max(1e-9, summary.seconds))} tokens/s)` +
        `${summary.lastDev ? `, dev loss ${summary.lastDev.loss.toFixed(3)}` : ""}` +
        `${summary.lastDev?.bleu !== undefined ? `, dev BLEU ${summary.lastDev.bleu.toFixed(2)}` : ""}` +
        `${summary.skippedSteps ? `, ${summary.skippedSteps} non-finite steps skipped` : ""}; checkpoint ${summary.lastCheckpoint}`,
    );
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      io.error(`polymoe train: ${e.message}`);
      return 2;
    }
    const err = e as { name?: string; code?: string; message: string };
    if (err.code && err.name && /Error$/.test(err.name) && err.name !== "Error") {
      io.error(`polymoe train: ${err.message}`);
      return 1;
    }
    throw e;
  }
}
