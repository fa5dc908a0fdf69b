// `polymoe prune`: keep the N most-used experts per layer and report BLEU against N.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

import { evaluate, expertUsage, loadModel, loadSplit, pruneExperts, usageTotals } from "@polymoe/eval";
import { lineChart } from "@polymoe/plot";

import { failure, parseFlags, positiveInt, SPLIT_ALIASES, selectBackend } from "./common.js";
import type { Command } from "./score.js";

const USAGE = `usage: polymoe prune --checkpoint DIR --keep N[,N...] [--per-task TASK] [options]

Measures how often each expert is used on a split (every direction, or only one
task's with --per-task), writes a checkpoint per N keeping each MoE layer's N
most-used experts (the gate renormalised over them), evaluates each, and reports
BLEU against N (prune.md, prune.svg).

  --keep LIST        experts to keep per layer, e.g. 4 or 2,4,8
  --per-task TASK    measure usage and evaluate on TASK's directions only (a language or a pair)
  --split NAME       where usage and BLEU are measured (default dev)
  --max-sentences N  first N sentences per direction (default 100)
  --beam N           beam size (default 1)
  --out DIR          where the pruned checkpoints go (default <checkpoint>/pruned)
  --corpus DIR       the corpus (default: the training corpus)
  --backend NAME     auto, native, cpu, wasm, tensorflow`;

export const command: Command = {
  summary: "prune experts",
  async run(argv) {
    const values = parseFlags("prune", USAGE, argv, {
      checkpoint: { type: "string" },
      keep: { type: "string" },
      "per-task": { type: "string" },
      split: { type: "string", default: "dev" },
      "max-sentences": { type: "string" },
      beam: { type: "string" },
      out: { type: "string" },
      corpus: { type: "string" },
      backend: { type: "string" },
    });
    if (typeof values === "number") return values;
    if (!values.checkpoint || !values.keep) {
      console.error(`polymoe prune: --checkpoint and --keep are required\n${USAGE.split("\n")[0]}`);
      return 2;
    }
    try {
      const keeps = (values.keep as string).split(",").map((k) => positiveInt("keep", k, 1));
      await selectBackend(values.backend as string | undefined, console.log);
      const corpusOpt = values.corpus ? { corpus: values.corpus as string } : {};
      const loaded = await loadModel(values.checkpoint as string, corpusOpt);
      if (!loaded.corpus)
        throw Object.assign(new Error("the corpus is unknown; pass --corpus DIR"), {
          code: "CHECKPOINT_MISSING",
          name: "ArgumentError",
        });
      const split = SPLIT_ALIASES[values.split as string] ?? (values.split as string);
      let sets = await loadSplit(
        loaded.corpus,
        split,
        positiveInt("max-sentences", values["max-sentences"] as string | undefined, 100),
      );
      const task = values["per-task"] as string | undefined;
      if (task) {
        const mine = sets.filter((s) => s.pair === task || s.tgtLang === task);
        if (mine.length === 0) {
          throw Object.assign(
            new Error(
              `unknown task '${task}': directions of ${split} are ${sets.map((s) => s.pair).join(", ")}`,
            ),
            {
              code: "UNKNOWN_TASK",
              name: "ArgumentError",
            },
          );
        }
        sets = mine;
      }
      const beamSize = positiveInt("beam", values.beam as string | undefined, 1);
      const usage = expertUsage(loaded.model, loaded.tokenizer, loaded.space, sets);
      const totals = usageTotals(usage);
      const base = evaluate(loaded, split, sets, { beamSize });
      const rows: { keep: number | "all"; parameters: number; bleu: number; chrf: number; dir: string }[] = [
        {
          keep: "all",
          parameters: loaded.model.numParameters(),
          bleu: base.averages.all.bleu,
          chrf: base.averages.all.chrf,
          dir: loaded.dir,
        },
      ];
      console.log(
        `unpruned: BLEU ${base.averages.all.bleu.toFixed(2)}, chrF ${base.averages.all.chrf.toFixed(2)} on ${split}${task ? ` (${task})` : ""}`,
      );
      loaded.model.dispose();
      const outRoot = (values.out as string | undefined) ?? path.join(loaded.dir, "pruned");
      for (const keep of keeps) {
        const dir = path.join(outRoot, `keep-${keep}${task ? `-${task}` : ""}`);
        const r = await pruneExperts(loaded.dir, keep, totals, dir, {
          ...corpusOpt,
          ...(task ? { label: task } : {}),
        });
        const pruned = await loadModel(r.dir, corpusOpt);
        const rep = evaluate(pruned, split, sets, { beamSize });
        pruned.model.dispose();
        rows.push({
          keep,
          parameters: r.parameters,
          bleu: rep.averages.all.bleu,
          chrf: rep.averages.all.chrf,
          dir: r.dir,
        });
        console.log(
          `keep ${keep}: BLEU ${rep.averages.all.bleu.toFixed(2)}, chrF ${rep.averages.all.chrf.toFixed(2)}, ${r.parameters.toLocaleString("en-US")} parameters -> ${r.dir}`,
        );
      }
      mkdirSync(outRoot, { recursive: true });
      const md = [
        `# Expert pruning on ${split}${task ? ` (task ${task})` : ""}`,
        "",
        "| experts kept per layer | parameters | BLEU | chrF | checkpoint |",
        "| --- | ---: | ---: | ---: | --- |",
        ...rows.map(
          (r) =>
            `| ${r.keep} | ${r.parameters.toLocaleString("en-US")} | ${r.bleu.toFixed(2)} | ${r.chrf.toFixed(2)} | \`${r.dir}\` |`,
        ),
        "",
      ].join("\n");
      writeFileSync(path.join(outRoot, "prune.md"), md);
      writeFileSync(
        path.join(outRoot, "prune.svg"),
        lineChart({
          title: `BLEU against experts kept (${split}${task ? `, ${task}` : ""})`,
          xLabel: "experts kept per MoE layer",
          yLabel: "BLEU",
          series: [
            {
              name: "pruned",
              points: rows
                .filter((r) => r.keep !== "all")
                .map((r) => [r.keep as number, r.bleu] as [number, number]),
            },
          ],
        }),
      );
      console.log(`\n${md}\nwritten to ${outRoot}`);
      return 0;
    } catch (e) {
      return failure("prune", e);
    }
  },
};
