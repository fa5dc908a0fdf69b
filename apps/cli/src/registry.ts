/** A subcommand: loaded only when invoked, so `polymoe --help` stays instant. */
export interface Command {
  /** One line for `polymoe --help`. */
  summary: string;
  /** Runs the subcommand with its own argv; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

export interface CommandEntry {
  name: string;
  summary: string;
  load: () => Promise<Command>;
}

/** Every subcommand, by name. Each module owns its flags and help text. */
export const COMMANDS: readonly CommandEntry[] = [
  {
    name: "info",
    summary: "show the tensor backend, BLAS, threads and SIMD level PolyMoE will use",
    load: async () => (await import("./commands/info.js")).command,
  },
  {
    name: "data",
    summary:
      "build a multilingual corpus, leakage-free splits and a tokenizer (data prepare --preset quick|full)",
    load: async () => (await import("./commands/data.js")).command,
  },
  {
    name: "train",
    summary:
      "train a translation model (dense, TokenMoE or TaskMoE) from a config; resumes from its last checkpoint",
    load: async () => (await import("./commands/train.js")).command,
  },
  {
    name: "study",
    summary:
      "the TaskMoE comparison study: dense, TokenMoE, TaskMoE, a distilled student, extraction, pruning, one results table; resumable",
    load: async () => (await import("./commands/study.js")).command,
  },
  {
    name: "smoke",
    summary: "train a small Transformer layer for a few steps on the selected backend and report what ran",
    load: async () => (await import("./commands/smoke.js")).command,
  },
  {
    name: "eval",
    summary: "translate a held-out split with a checkpoint; BLEU/chrF per language, averages, plots",
    load: async () => (await import("@polymoe/app-eval/commands/eval")).command,
  },
  {
    name: "extract",
    summary: "write the subnetwork of a TaskMoE model that serves one task (language or pair)",
    load: async () => (await import("@polymoe/app-eval/commands/extract")).command,
  },
  {
    name: "prune",
    summary: "keep the N most-used experts per layer and report BLEU against N",
    load: async () => (await import("@polymoe/app-eval/commands/prune")).command,
  },
  {
    name: "score",
    summary: "BLEU, chrF and chrF++ of a hypothesis file against references, identical to sacreBLEU 2.x",
    load: async () => (await import("@polymoe/app-eval/commands/score")).command,
  },
  {
    name: "launch",
    summary: "run N ranks of a subcommand under mpirun (polymoe launch -n 2 -- comm)",
    load: async () => (await import("./commands/launch.js")).command,
  },
  {
    name: "comm",
    summary: "check and time allReduce/allToAll over the ranks of a launched job",
    load: async () => (await import("./commands/comm.js")).command,
  },
  {
    name: "plan",
    summary:
      "scale planner: memory per device/host/disk, communication and the largest trainable model per strategy",
    load: async () => (await import("./commands/plan.js")).command,
  },
];
