// `polymoe launch` end to end: real mpirun, real ranks of the polymoe CLI.
import { describe, expect, it } from "vitest";

import { mpiReady, polymoe } from "./mpirun.js";

const ready = mpiReady();

describe.skipIf(!ready.ok)(`polymoe launch${ready.note}`, () => {
  it("runs N ranks that read rank/size from MPI; only rank 0 prints; threads = cores / ranks", () => {
    const job = polymoe(["launch", "-n", "2", "--", "comm", "--mb", "1", "--iters", "2"]);
    expect(job.status, job.stderr).toBe(0);
    expect(job.stdout.match(/^comm: 2 ranks \(mpi\)/gm)?.length).toBe(1);
    expect(job.stdout).toMatch(/allreduce .* check ok/);
    expect(job.stdout).toMatch(/alltoall .* check ok/);
    expect(job.stderr).toMatch(/threads per rank: \d+ = \d+ cores \/ 2 ranks per host/);
    const all = polymoe([
      "launch",
      "-n",
      "2",
      "--log-all-ranks",
      "--",
      "comm",
      "--mb",
      "1",
      "--iters",
      "1",
      "--collective",
      "allreduce",
    ]);
    expect(all.status, all.stderr).toBe(0);
    expect(all.stdout.match(/^comm: 2 ranks \(mpi\)/gm)?.length).toBe(2);
  });

  it("a rank killed in the middle of a collective stops the whole job, non-zero, within 60 s, naming the rank", () => {
    const job = polymoe([
      "launch",
      "-n",
      "3",
      "--",
      "comm",
      "--mb",
      "1",
      "--iters",
      "200",
      "--kill-rank",
      "1",
      "--kill-at",
      "3",
    ]);
    expect(job.status).not.toBe(0);
    expect(job.status).not.toBeNull(); // not our 90 s test timeout
    expect(job.ms).toBeLessThan(60_000);
    expect(job.stderr).toMatch(/\[rank 1\] rank 1: --kill-rank rehearsal, killing myself during allreduce 3/);
    expect(job.stderr).toMatch(/polymoe launch: rank 1 failed \(.*killed by signal 9/);
  });
});
