// `polymoe eval`: translate a split with a checkpoint and score every direction.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

import {
  evaluate,
  expertUsage,
  listAvailableSplits,
  loadModel,
  loadSplit,
  reportMarkdown,
  reportPlots,
} from "@polymoe/eval";

import { failure, parseFlags, positiveInt, SPLIT_ALIASES, selectBackend } from "./common.js";
import type { Command } from "./score.js";

const USAGE = `usage: polymoe eval --checkpoint DIR [--split test|dev|udhr|handbook|NAME] [options]

Translates every direction of a held-out split (English to each language and back)
with a checkpoint (a run directory uses its best, else last, checkpoint; extracted
and pruned checkpoints work too), scores each with BLEU, chrF and chrF++ identical
to sacreBLEU, and writes report.md, report.json, bleu.svg, usage-<layer>.svg (expert
usage per direction) and the hypotheses.

  --checkpoint DIR      run directory or checkpoint directory
  --split NAME          test (default), dev, udhr, handbook, or any split of the corpus
  --beam N              beam size (default 1: greedy)
  --length-penalty X    hypothesis score = log p / length^X (default 1)
  --batch N             sentences decoded together (default 32)
  --max-sentences N     first N sentences of each direction
  --directions LIST     only these directions (e.g. en-fr,fr-en)
  --out DIR             where to write (default <checkpoint>/eval-<split>)
  --corpus DIR          the corpus (default: the one the model was trained on)
  --backend NAME        auto, native, cpu, wasm, tensorflow
  --json                print the report as JSON instead of Markdown`;

export const command: Command = {
  summary: "evaluate a checkpoint per language",
  async run(argv) {
    const values = parseFlags("eval", USAGE, argv, {
      checkpoint: { type: "string" },
      split: { type: "string", default: "test" },
      beam: { type: "string" },
      "length-penalty": { type: "string" },
      batch: { type: "string" },
      "max-sentences": { type: "string" },
      directions: { type: "string" },
      out: { type: "string" },
      corpus: { type: "string" },
      backend: { type: "string" },
      json: { type: "boolean", default: false },
    });
    if (typeof values === "number") return values;
    if (!values.checkpoint) {
      console.error("polymoe eval: --checkpoint DIR is required (a run directory or a checkpoint)");
      return 2;
    }
    try {
      const log = (l: string) => (values.json ? console.error(l) : console.log(l));
      await selectBackend(values.backend as string | undefined, log);
      const loaded = await loadModel(
        values.checkpoint as string,
        values.corpus ? { corpus: values.corpus as string } : {},
      );
      if (!loaded.corpus)
        throw Object.assign(new Error("the corpus is unknown; pass --corpus DIR"), {
          code: "CHECKPOINT_MISSING",
          name: "ArgumentError",
        });
      const split = SPLIT_ALIASES[values.split as string] ?? (values.split as string);
      const available = listAvailableSplits(loaded.corpus);
      if (!available.includes(split)) {
        throw Object.assign(
          new Error(`the corpus has no split '${values.split}'; available: ${available.join(", ")}`),
          {
            code: "INVALID_ARGUMENT",
            name: "ArgumentError",
          },
        );
      }
      const max = values["max-sentences"]
        ? positiveInt("max-sentences", values["max-sentences"] as string, 1)
        : undefined;
      let sets = await loadSplit(loaded.corpus, split, max);
      if (values.directions) {
        const want = (values.directions as string).split(",");
        const unknown = want.filter((d) => !sets.some((s) => s.pair === d));
        if (unknown.length) {
          throw Object.assign(
            new Error(
              `no direction ${unknown.join(", ")} in split ${split}; available: ${sets.map((s) => s.pair).join(", ")}`,
            ),
            {
              code: "INVALID_ARGUMENT",
              name: "ArgumentError",
            },
          );
        }
        sets = sets.filter((s) => want.includes(s.pair));
      }
      const trainPairs: Record<string, number> = {};
      for (const [pair, t] of Object.entries(loaded.corpus.manifest.tokens))
        trainPairs[pair.split("-")[1] as string] = t.pairs;
      const report = evaluate(loaded, split, sets, {
        beamSize: positiveInt("beam", values.beam as string | undefined, 1),
        batchSize: positiveInt("batch", values.batch as string | undefined, 32),
        lengthPenalty: values["length-penalty"] === undefined ? 1 : Number(values["length-penalty"]),
        trainPairs,
        onDirection: (d) =>
          log(
            `${d.pair.padEnd(10)} BLEU ${d.bleu.toFixed(2).padStart(6)}  chrF ${d.chrf.toFixed(2).padStart(6)}  (${d.sentences} sentences, ${Math.round(d.outputTokens / d.seconds)} tokens/s)`,
          ),
      });
      const usage =
        loaded.model.moeLayers().length > 0
          ? expertUsage(loaded.model, loaded.tokenizer, loaded.space, sets)
          : [];
      const out = (values.out as string | undefined) ?? path.join(loaded.dir, `eval-${split}`);
      mkdirSync(path.join(out, "hypotheses"), { recursive: true });
      const md = reportMarkdown(report, usage);
      writeFileSync(path.join(out, "report.md"), md);
      const { directions, ...rest } = report;
      const json = { ...rest, directions: directions.map(({ hypotheses, ...d }) => d), usage };
      writeFileSync(path.join(out, "report.json"), `${JSON.stringify(json, null, 2)}\n`);
      for (const [name, svg] of Object.entries(reportPlots(report, usage)))
        writeFileSync(path.join(out, name), svg);
      for (const d of directions)
        writeFileSync(path.join(out, "hypotheses", `${d.pair}.txt`), `${d.hypotheses.join("\n")}\n`);
      if (values.json) console.log(JSON.stringify(json));
      else console.log(`\n${md}\nwritten to ${out}`);
      loaded.model.dispose();
      return 0;
    } catch (e) {
      return failure("eval", e);
    }
  },
};
