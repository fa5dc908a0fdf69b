import { nearest } from "@polymoe/schema";

import { COMMANDS } from "./registry.js";

export { COMMANDS, type Command, type CommandEntry } from "./registry.js";

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "usage: polymoe <command> [options]   (polymoe <command> --help for its options)",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
  ].join("\n");
}

/** Dispatches argv[0] to its subcommand; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name === undefined ? 1 : 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    const names = COMMANDS.map((c) => c.name);
    const near = nearest(name, names);
    console.error(
      `polymoe: unknown command '${name}'${near ? ` (did you mean '${near}'?)` : ""}. Valid commands: ${names.join(", ")}`,
    );
    return 2;
  }
  if (name !== "launch" && process.env.POLYMOE_LAUNCHED === "1") {
    // A rank of `polymoe launch`: rank and size come from MPI; only rank 0 keeps stdout.
    const { initRankProcess, ParallelError } = await import("@polymoe/parallel");
    try {
      initRankProcess();
    } catch (e) {
      if (!(e instanceof ParallelError)) throw e;
      console.error(`polymoe ${name}: ${e.message}`);
      return 1;
    }
  }
  const command = await entry.load();
  return command.run(rest);
}
