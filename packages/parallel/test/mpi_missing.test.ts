import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

describe("without the MPI binding", () => {
  it("everything but the mpi backend works, and asking for MPI says why and how to fix it", () => {
    const script = `
      import { createWorld, mpiAvailability, mpiWorld, runSimulated } from "./src/index.ts";
      const out = { availability: mpiAvailability() };
      try { mpiWorld(); out.mpi = "no error"; } catch (e) { out.mpi = { code: e.code, message: e.message }; }
      const world = createWorld({ backend: "auto", checks: true });
      out.local = [world.backend, [...(await world.allReduce(Float32Array.of(2)))]];
      console.log(JSON.stringify(out));
    `;
    const r = spawnSync(
      process.execPath,
      ["--conditions=@polymoe/source", "--import", "tsx", "--input-type=module", "-e", script],
      {
        cwd: pkg,
        encoding: "utf8",
        env: { ...process.env, POLYMOE_MPI_ADDON: "/nonexistent/polymoe_mpi.node", OMPI_COMM_WORLD_SIZE: "" },
      },
    );
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.availability.available).toBe(false);
    expect(out.availability.reason).toMatch(
      /the MPI binding was not found at \/nonexistent\/polymoe_mpi.node/,
    );
    expect(out.mpi.code).toBe("MPI_UNAVAILABLE");
    expect(out.mpi.message).toMatch(
      /MPI backend unavailable: .*apt-get install -y libopenmpi-dev openmpi-bin, then pnpm --filter @polymoe\/parallel build:native/,
    );
    expect(out.local).toEqual(["local", [2]]);
  });
});
