// One rank of an MPI test job: runs an exported rank function (the same ones
// the simulated tests run) on the MPI world and writes its result to
// $POLYMOE_TEST_OUT/rank-<rank>.json.
// usage: mpirun -np N node --conditions=@polymoe/source --import tsx test-mpi/run_rank.ts MODULE EXPORT [JSON_ARGS]
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { mpiWorld } from "@polymoe/parallel";

const [modulePath, exportName, json] = process.argv.slice(2);
const { comm, info } = mpiWorld();
const mod = (await import(pathToFileURL(path.resolve(modulePath!)).href)) as Record<
  string,
  (c: typeof comm, a: unknown) => Promise<unknown>
>;
const value = await mod[exportName!]!(comm, json === undefined ? undefined : JSON.parse(json));
// One file per rank (mpirun interleaves long stdout lines of different ranks).
const outDir = process.env.POLYMOE_TEST_OUT ?? path.join(tmpdir(), "polymoe-mpi-test");
mkdirSync(outDir, { recursive: true });
const out = path.join(outDir, `rank-${comm.rank}.json`);
writeFileSync(`${out}.tmp`, JSON.stringify({ value, info }));
renameSync(`${out}.tmp`, out);
