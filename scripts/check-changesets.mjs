// Every .changeset/*.md (but README.md) must open with the front matter changesets
// parses: ---, one `"package": major|minor|patch` line per published package, ---.
// (`changeset status` checks this too, but it also diffs against the base branch,
// which a CI checkout may not have.)
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

const dir = path.join(path.dirname(new URL(import.meta.url).pathname), "..", ".changeset");
const published = new Set(
  readdirSync(path.join(dir, "..", "packages")).map(
    (p) => JSON.parse(readFileSync(path.join(dir, "..", "packages", p, "package.json"), "utf8")).name,
  ),
);
const bad = [];
for (const f of readdirSync(dir).filter((f) => f.endsWith(".md") && f !== "README.md")) {
  const lines = readFileSync(path.join(dir, f), "utf8").split("\n");
  const end = lines.indexOf("---", 1);
  if (lines[0] !== "---" || end < 2) {
    bad.push(`${f}: must start with '---', list '"package": minor' lines, then '---'`);
    continue;
  }
  lines.slice(1, end).forEach((l, i) => {
    const m = /^"(@polymoe\/[a-z-]+)": (major|minor|patch)$/.exec(l);
    if (!m) bad.push(`${f}:${i + 2}: expected '"@polymoe/<package>": major|minor|patch', got '${l}'`);
    else if (!published.has(m[1])) bad.push(`${f}:${i + 2}: ${m[1]} is not a package in packages/`);
  });
}
if (bad.length) {
  console.error(`changesets:\n  ${bad.join("\n  ")}`);
  process.exit(1);
}
