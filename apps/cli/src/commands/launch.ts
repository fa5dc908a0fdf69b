import { parseArgs } from "node:util";

import { launch, ParallelError, planLaunch } from "@polymoe/parallel";
import { nearest } from "@polymoe/schema";

import type { Command } from "../registry.js";

const HELP = `usage: polymoe launch -n N [--hostfile FILE] [--log-all-ranks] [--oversubscribe] [--dry-run] -- <command> [args...]

Runs N ranks of a polymoe subcommand under mpirun (Open MPI). Each rank reads its
rank and world size from MPI; only rank 0 prints to stdout unless --log-all-ranks
(every rank's stderr is shown, tagged "[rank r]"). Each rank gets
POLYMOE_NUM_THREADS = cores / ranks per host (an explicit POLYMOE_NUM_THREADS wins),
and POLYMOE_*, OMPI_MCA_* and thread variables are exported to every host.
If a rank dies, the job stops and the exit code is non-zero, with a line naming
the rank.

  -n, --ranks N        number of ranks
  --hostfile FILE      Open MPI hostfile ("host slots=K" per line); default: this host
  --log-all-ranks      let every rank print to stdout
  --oversubscribe      allow more ranks than hostfile slots (automatic on this host)
  --mpirun PATH        mpirun to use (default: POLYMOE_MPIRUN, else mpirun)
  --dry-run            print the mpirun command and exit

example: polymoe launch -n 2 -- comm --mb 16`;

function fail(msg: string): number {
  console.error(`polymoe launch: ${msg}`);
  return 2;
}

export const command: Command = {
  summary: "run N ranks of a subcommand under mpirun",
  async run(argv) {
    const sep = argv.indexOf("--");
    const own = sep < 0 ? argv : argv.slice(0, sep);
    const rest = sep < 0 ? [] : argv.slice(sep + 1);
    let values: ReturnType<typeof parse>["values"];
    function parse(args: string[]) {
      return parseArgs({
        args,
        options: {
          ranks: { type: "string", short: "n" },
          hostfile: { type: "string" },
          "log-all-ranks": { type: "boolean", default: false },
          oversubscribe: { type: "boolean", default: false },
          mpirun: { type: "string" },
          "dry-run": { type: "boolean", default: false },
          help: { type: "boolean", short: "h", default: false },
        },
        strict: true,
        allowPositionals: false,
      });
    }
    try {
      values = parse(own).values;
    } catch (e) {
      return fail(`${(e as Error).message} (polymoe launch --help lists the options)`);
    }
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (values.ranks === undefined) return fail("-n N is required (the number of ranks)");
    const ranks = Number(values.ranks);
    if (!Number.isInteger(ranks) || ranks < 1)
      return fail(`-n must be an integer >= 1, got '${values.ranks}'`);
    if (rest.length === 0)
      return fail("nothing to run: put the subcommand after --, e.g. polymoe launch -n 2 -- comm");
    const { COMMANDS } = await import("../registry.js");
    const sub = rest[0]!;
    if (sub === "launch") return fail("cannot launch 'launch' itself");
    if (!COMMANDS.some((c) => c.name === sub)) {
      const names = COMMANDS.map((c) => c.name);
      const near = nearest(sub, names);
      return fail(
        `unknown command '${sub}' after --${near ? ` (did you mean '${near}'?)` : ""}. Valid commands: ${names.join(", ")}`,
      );
    }
    // Every rank runs this same CLI the way this process was started (with the
    // same Node flags, e.g. the TypeScript loader during development).
    const command = [process.execPath, ...process.execArgv, process.argv[1]!, ...rest];
    const options = {
      ranks,
      command,
      logAllRanks: values["log-all-ranks"],
      oversubscribe: values.oversubscribe,
      ...(values.hostfile === undefined ? {} : { hostfile: values.hostfile }),
      ...(values.mpirun === undefined ? {} : { mpirun: values.mpirun }),
    };
    try {
      const plan = planLaunch(options);
      for (const n of plan.notes) console.error(`polymoe launch: ${n}`);
      if (values["dry-run"]) {
        console.log(
          [plan.file, ...plan.args].map((a) => (/[\s"'$]/.test(a) ? JSON.stringify(a) : a)).join(" "),
        );
        return 0;
      }
      return await launch(options);
    } catch (e) {
      if (e instanceof ParallelError) return fail(e.message);
      throw e;
    }
  },
};
