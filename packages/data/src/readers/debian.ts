// Debian packages as a data source: `apt-get download NAME` into a cache (no
// installation, no root needed for the download itself), then the package's files are
// unpacked with dpkg-deb into a per-package cache directory. Only the members a reader
// needs are written (`dpkg-deb --fsys-tarfile | tar -x --wildcards PATTERN`): the 31
// measured packages hold ~570 MB of .mo files but several GB of other data.
import { spawn, spawnSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import path from "node:path";

import { DataError } from "../errors.js";
import { exists } from "../util/fs.js";

export interface AptTools {
  /** apt-get executable (name on PATH or a path). */
  aptGet: string;
  /** dpkg-deb executable. */
  dpkgDeb: string;
}

export const DEFAULT_APT_TOOLS: AptTools = { aptGet: "apt-get", dpkgDeb: "dpkg-deb" };

/** One downloaded package in the cache. */
export interface CachedDeb {
  name: string;
  version: string;
  file: string;
}

export interface FetchReport {
  debs: CachedDeb[];
  /** Packages that could not be fetched, with the reason (apt's last error line). */
  failed: Array<{ name: string; reason: string }>;
  /** How many came from the cache without a download. */
  cached: number;
}

/** Why apt cannot be used here, or undefined when apt-get and dpkg-deb both run. */
export function aptUnavailableReason(tools: AptTools = DEFAULT_APT_TOOLS): string | undefined {
  for (const [what, cmd] of [
    ["apt-get", tools.aptGet],
    ["dpkg-deb", tools.dpkgDeb],
  ] as const) {
    const r = spawnSync(cmd, ["--version"], { stdio: "ignore" });
    if (r.error || r.status !== 0) {
      return `${what} (${cmd}) cannot run here${r.error ? `: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}` : ` (exit ${r.status})`}`;
    }
  }
  return undefined;
}

function run(
  cmd: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, LC_ALL: "C" },
    });
    let stderr = "";
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", (e) => resolve({ code: 127, stderr: `${e.message}`, stdout }));
    child.on("close", (code) => resolve({ code: code ?? 1, stderr, stdout }));
  });
}

const debName = (file: string) => {
  const base = path.basename(file, ".deb");
  const [name = base, version = ""] = base.split("_");
  return { name, version: decodeURIComponent(version) };
};

async function cachedDeb(dir: string, name: string): Promise<CachedDeb | undefined> {
  let files: string[];
  try {
    files = await fsp.readdir(dir);
  } catch {
    return undefined;
  }
  const hit = files.filter((f) => f.endsWith(".deb") && f.startsWith(`${name}_`)).sort();
  const last = hit[hit.length - 1];
  if (!last) return undefined;
  const file = path.join(dir, last);
  return { ...debName(file), name, file };
}

function lastErrorLine(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/unsandboxed/.test(l));
  return lines.filter((l) => /^E:/.test(l)).pop() ?? lines.pop() ?? "unknown error";
}

/**
 * Makes sure every package is in `<cacheDir>/debs`, downloading the missing ones with
 * `apt-get download` (one call for all, then one per package if that fails, so one bad
 * name does not lose the rest). When apt knows none of the names and we are root, runs
 * `apt-get update` once and retries (a fresh machine has empty package lists).
 */
export async function fetchDebs(
  packages: readonly string[],
  cacheDir: string,
  tools: AptTools = DEFAULT_APT_TOOLS,
): Promise<FetchReport> {
  const dir = path.join(cacheDir, "debs");
  await fsp.mkdir(dir, { recursive: true });
  const report: FetchReport = { debs: [], failed: [], cached: 0 };
  const missing: string[] = [];
  for (const name of packages) {
    const hit = await cachedDeb(dir, name);
    if (hit) {
      report.debs.push(hit);
      report.cached++;
    } else missing.push(name);
  }
  if (missing.length === 0) return report;
  const why = aptUnavailableReason(tools);
  if (why) {
    throw new DataError("APT_UNAVAILABLE", `cannot download Debian packages (${missing.join(" ")}): ${why}`);
  }
  let r = await run(tools.aptGet, ["download", "-q", ...missing], dir);
  if (r.code !== 0 && /Unable to locate package|has no installation candidate/.test(r.stderr)) {
    const stillMissing = [];
    for (const name of missing) if (!(await cachedDeb(dir, name))) stillMissing.push(name);
    if (stillMissing.length === missing.length && process.getuid?.() === 0) {
      await run(tools.aptGet, ["update", "-qq"], dir);
    }
  }
  if (r.code !== 0) {
    for (const name of missing) {
      if (await cachedDeb(dir, name)) continue;
      r = await run(tools.aptGet, ["download", "-q", name], dir);
      if (r.code !== 0) report.failed.push({ name, reason: lastErrorLine(r.stderr) });
    }
  }
  for (const name of missing) {
    const hit = await cachedDeb(dir, name);
    if (hit) report.debs.push(hit);
    else if (!report.failed.some((f) => f.name === name)) {
      report.failed.push({ name, reason: lastErrorLine(r.stderr) });
    }
  }
  report.debs.sort((a, b) => packages.indexOf(a.name) - packages.indexOf(b.name));
  return report;
}

/**
 * Unpacks the members of `deb` matching the tar wildcards into
 * `<cacheDir>/extract/<deb basename>/<key>/` (once; later calls reuse it) and returns
 * that directory. Falls back to `dpkg-deb -x` (everything) when tar is missing.
 */
export async function extractDeb(
  deb: CachedDeb,
  cacheDir: string,
  patterns: readonly string[],
  key: string,
  tools: AptTools = DEFAULT_APT_TOOLS,
): Promise<string> {
  const dest = path.join(cacheDir, "extract", path.basename(deb.file, ".deb"), key);
  const marker = path.join(dest, ".complete");
  if (await exists(marker)) return dest;
  const tmp = `${dest}.tmp-${process.pid}`;
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.mkdir(tmp, { recursive: true });
  const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  const haveTar = spawnSync("tar", ["--version"], { stdio: "ignore" }).status === 0;
  const r = haveTar
    ? await run(
        "sh",
        [
          "-c",
          `${quote(tools.dpkgDeb)} --fsys-tarfile ${quote(deb.file)} | tar -x -C ${quote(tmp)} --wildcards ${patterns.map(quote).join(" ")}`,
        ],
        tmp,
      )
    : await run(tools.dpkgDeb, ["-x", deb.file, tmp], tmp);
  // tar exits 2 when a pattern matched nothing: an empty extraction, not a failure.
  if (r.code !== 0 && !(haveTar && /Not found in archive/.test(r.stderr))) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw new DataError("APT_UNAVAILABLE", `${deb.file}: unpacking failed: ${lastErrorLine(r.stderr)}`);
  }
  await fsp.writeFile(path.join(tmp, ".complete"), `${deb.name} ${deb.version}\n`);
  await fsp.rm(dest, { recursive: true, force: true });
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  await fsp.rename(tmp, dest);
  return dest;
}

/** A gettext catalog found on disk. */
export interface CatalogFile {
  file: string;
  /** The locale directory name (`pt_BR`, `sr@latin`, `pl.UTF-8`). */
  locale: string;
  /** The text domain (file name without extension). */
  domain: string;
}

const CATALOG_RE = /[/\\](?:locale|lang)[/\\]([^/\\]+)[/\\]LC_MESSAGES[/\\]([^/\\]+)\.(?:mo|po)$/;

/** Every `.../(locale|lang)/<locale>/LC_MESSAGES/<domain>.(mo|po)` under `root`, sorted. */
export async function findCatalogs(root: string): Promise<CatalogFile[]> {
  const out: CatalogFile[] = [];
  const walk = async (dir: string) => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const m = CATALOG_RE.exec(p);
        if (m) out.push({ file: p, locale: m[1]!, domain: m[2]! });
      }
    }
  };
  await walk(root);
  return out.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}
