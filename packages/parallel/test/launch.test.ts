import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

import { parseHostfile, parseRankFailure, planLaunch } from "../src/index.js";

const cmd = ["node", "cli.js", "comm"];

describe("launch planning", () => {
  it("one host: oversubscribes past the cores and gives each rank cores / ranks threads", () => {
    const plan = planLaunch({
      ranks: 4,
      command: cmd,
      cores: 2,
      root: false,
      env: { PATH: "/bin", OMPI_MCA_btl: "self,vader" },
      stdoutIsTTY: false,
    });
    expect(plan.file).toBe("mpirun");
    expect(plan.args).toEqual([
      "--oversubscribe",
      "--bind-to",
      "none",
      "-x",
      "OMPI_MCA_btl",
      "-x",
      "OMP_NUM_THREADS",
      "-x",
      "OPENBLAS_NUM_THREADS",
      "-x",
      "POLYMOE_LAUNCHED",
      "-x",
      "POLYMOE_NUM_THREADS",
      "-x",
      "POLYMOE_STDOUT_TTY",
      "-np",
      "4",
      ...cmd,
    ]);
    expect(plan.threadsPerRank).toBe(1);
    expect(plan.env.POLYMOE_NUM_THREADS).toBe("1");
    expect(plan.env.POLYMOE_LOG_ALL_RANKS).toBeUndefined();
    // mpirun gives ranks a pseudo-terminal; they are told whether the launcher's stdout is one.
    expect(plan.env.POLYMOE_STDOUT_TTY).toBe("0");
    expect(
      planLaunch({ ranks: 2, command: cmd, cores: 2, env: {}, stdoutIsTTY: true }).env.POLYMOE_STDOUT_TTY,
    ).toBe("1");
    const wide = planLaunch({ ranks: 2, command: cmd, cores: 16, root: true, env: {}, logAllRanks: true });
    expect(wide.threadsPerRank).toBe(8);
    expect(wide.args).toContain("--allow-run-as-root");
    expect(wide.args).not.toContain("--oversubscribe");
    expect(wide.args.join(" ")).toMatch(/--allow-run-as-root --map-by slot:PE=8 --bind-to core -x/);
    expect(wide.env.POLYMOE_LOG_ALL_RANKS).toBe("1");
    expect(
      planLaunch({ ranks: 2, command: cmd, cores: 16, root: false, env: { POLYMOE_NUM_THREADS: "3" } })
        .threadsPerRank,
    ).toBe(3);
  });

  it("hostfile: ranks per host follow mpirun's slot filling; too few slots is an error with the fix", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "polymoe-hostfile-"));
    const file = path.join(dir, "hosts");
    writeFileSync(file, "# two nodes\nnode-a slots=4\nnode-b slots=2 max_slots=8\n");
    expect(parseHostfile("a slots=2\n\nb # comment\n")).toEqual([
      { name: "a", slots: 2 },
      { name: "b", slots: 1 },
    ]);
    const plan = planLaunch({ ranks: 6, command: cmd, cores: 8, root: false, env: {}, hostfile: file });
    expect(plan.ranksPerHost).toBe(4);
    expect(plan.threadsPerRank).toBe(2);
    expect(plan.args.slice(0, 2)).toEqual(["--hostfile", file]);
    expect(plan.notes[0]).toBe("hosts: node-a (4 ranks), node-b (2 ranks)");
    expect(() => planLaunch({ ranks: 7, command: cmd, root: false, env: {}, hostfile: file })).toThrow(
      `--hostfile ${file} has 6 slots for 7 ranks: add hosts or slots, or pass --oversubscribe`,
    );
    expect(() => parseHostfile("a cores=2", "h")).toThrow(
      "h:1: cannot read 'cores=2' (expected 'slots=N' or 'max_slots=N' after the host name)",
    );
    expect(() => planLaunch({ ranks: 0, command: cmd })).toThrow("-n must be an integer >= 1, got 0");
  });

  it("reads the failed rank out of Open MPI's reports", () => {
    expect(
      parseRankFailure(
        "--------\nmpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed).\n-------",
      ),
    ).toEqual({ rank: 1, detail: "on vm was killed by signal 9 (Killed)" });
    expect(
      parseRankFailure("MPI_ABORT was invoked on rank 2 in communicator MPI_COMM_WORLD\nwith errorcode 1.\n"),
    ).toEqual({ rank: 2, detail: "called MPI_Abort with error code 1" });
    expect(
      parseRankFailure(
        "the job to be terminated. The first process to do so was:\n\n  Process name:    [[35725,1],3]\n  Exit code:       2\n",
      ),
    ).toEqual({ rank: 3, detail: "exited with code 2" });
    expect(parseRankFailure("all good")).toBeNull();
  });
});
