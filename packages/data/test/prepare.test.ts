// End to end on generated fixtures: tiny .deb packages holding generated .mo catalogs,
// served by a stand-in apt-get, unpacked by the real dpkg-deb. No network.
import { promises as fsp } from "node:fs";
import path from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import {
  type CorpusManifest,
  createBatchIterator,
  englishKey,
  formatSummary,
  loadEvalSet,
  loadTrainingData,
  openCorpus,
  parseLoaderConfig,
  parsePrepareConfig,
  prepareCorpus,
} from "../src/index.js";
import { buildDeb, buildMo, fakeAptGet, haveDpkgDeb, type MoEntry, tempDir } from "./fixtures/gettext.js";

const WORDS: Record<string, string[]> = {
  en: ["Open", "the", "selected", "file", "in", "a", "new", "window", "now"],
  fr: ["Ouvrir", "le", "fichier", "choisi", "dans", "une", "nouvelle", "fenêtre", "maintenant"],
  de: ["Öffnen", "die", "gewählte", "Datei", "in", "einem", "neuen", "Fenster", "jetzt"],
  ru: ["Открыть", "выбранный", "файл", "в", "новом", "окне", "сейчас", "же", "снова"],
};
/** Message i in a language: distinct, ≥ 5 words, deterministic. */
const msg = (lang: string, i: number) => {
  const w = WORDS[lang]!;
  return `${w[i % 9]} ${w[(i * 7 + 1) % 9]} ${w[(i * 5 + 2) % 9]} ${w[(i * 3 + 4) % 9]} ${lang === "en" ? "number" : "n°"} ${i}`;
};
const catalog = (lang: string, from: number, to: number): MoEntry[] => {
  const out: MoEntry[] = [];
  for (let i = from; i < to; i++) out.push({ msgid: msg("en", i), msgstr: msg(lang, i) });
  out.push({ msgid: `Saved %d files ${from}`, msgstr: `${lang} %d ${from}` }); // format → dropped
  out.push({ msgid: `Untranslated copy ${from}`, msgstr: `Untranslated copy ${from}` }); // untranslated
  out.push({ msgid: `Bold <b>text</b> ${from}`, msgstr: `${lang} <b>x</b> ${from}` }); // markup
  out.push({ msgid: `_Quit now ${from}`, msgstr: `${lang} _quit ${from}` }); // accelerator stripped, kept
  return out;
};
const moPath = (locale: string, domain: string) => `usr/share/locale/${locale}/LC_MESSAGES/${domain}.mo`;

describe.skipIf(!haveDpkgDeb)(
  `prepareCorpus on generated Debian packages${haveDpkgDeb ? "" : " [skipped: dpkg-deb not installed]"}`,
  () => {
    let root: string;
    let aptGet: string;
    let manifest: CorpusManifest;
    let out: string;

    beforeAll(async () => {
      root = await tempDir();
      const repo = path.join(root, "repo");
      await fsp.mkdir(repo);
      await buildDeb(repo, "pkg-a", {
        [moPath("fr", "a")]: buildMo(catalog("fr", 0, 60)),
        [moPath("de_DE", "a")]: buildMo(catalog("de", 0, 60), { littleEndian: false }),
        [moPath("ru", "a")]: buildMo(catalog("ru", 0, 60)),
        [moPath("xx_YY", "a")]: buildMo(catalog("fr", 0, 5)),
      });
      const truncated = buildMo(catalog("ru", 40, 80)).subarray(0, 100);
      await buildDeb(repo, "pkg-b", {
        [moPath("fr", "b")]: buildMo(catalog("fr", 40, 80)),
        [moPath("de", "b")]: buildMo(catalog("de", 40, 80)),
        [moPath("ru", "b")]: truncated,
      });
      aptGet = await fakeAptGet(root, repo);
      await fsp.writeFile(
        path.join(root, "user.tsv"),
        Array.from({ length: 30 }, (_, i) => `${msg("en", 200 + i)}\t${msg("fr", 200 + i)}`).join("\n"),
      );
      // A user test set whose English also appears in the catalogs: it must leave train.
      await fsp.writeFile(
        path.join(root, "devtest.jsonl"),
        [10, 11, 12]
          .map((i) => JSON.stringify({ translation: { en: msg("en", i), de: msg("de", i) } }))
          .join("\n"),
      );
      out = path.join(root, "corpus");
      manifest = await prepareCorpus(
        parsePrepareConfig({
          out,
          cacheDir: path.join(root, "cache"),
          languages: ["fr", "de", "ru"],
          sources: {
            debian: { packages: ["pkg-a", "pkg-b", "pkg-missing"], aptGet },
            handbook: "off",
            files: [
              { format: "tsv", path: path.join(root, "user.tsv"), src: "en", tgt: "fr" },
              {
                format: "jsonl",
                path: path.join(root, "devtest.jsonl"),
                src: "en",
                tgt: "de",
                role: "test",
                name: "mine",
              },
            ],
          },
          split: { testSize: 6, devSize: 4, minLanguages: 3, minWords: 5, maxHeldOutFraction: 0.5 },
          tokenizer: { vocabSize: 1000, sampleSentences: 2000 },
        }),
      );
    }, 60_000);

    it("builds every language's splits and reports what it skipped and why", () => {
      expect(manifest.languages).toEqual(["en", "de", "fr", "ru"]);
      expect(Object.keys(manifest.splits).sort()).toEqual(["dev", "test", "test-mine", "test-udhr", "train"]);
      const deb = manifest.sources.find((s) => s.name === "debian")!;
      expect(deb.packages).toEqual({ "pkg-a": "1.0-1", "pkg-b": "1.0-1" });
      expect(deb.errors.join("\n")).toMatch(/pkg-missing: E: Unable to locate package pkg-missing/);
      expect(deb.errors.join("\n")).toMatch(/ru\/LC_MESSAGES\/b\.mo: .*truncated/);
      expect(deb.skippedLocales).toEqual({ xx_YY: 1 });
      expect(manifest.warnings.join("\n")).toMatch(/1 of 3 Debian packages could not be fetched/);
      expect(manifest.skipped.format).toBe(5);
      expect(manifest.skipped.markup).toBe(5);
      expect(manifest.skipped.untranslated).toBe(5);
      expect(manifest.skipped.duplicate).toBe(2 * 20); // messages 40..59 appear in both packages for fr and de
      // fr: 80 catalog messages + 2 "_Quit" lines + 30 user pairs; de 80 + 2; ru 60 + 1 (pkg-b's catalog is broken)
      const kept = (l: string) => manifest.languageStats[l]!.kept;
      expect([kept("fr"), kept("de"), kept("ru")]).toEqual([112, 82, 61]);
      expect(manifest.languageStats.fr!.bySource["file:user.tsv"]).toBe(30);
      const summary = formatSummary(manifest);
      expect(summary).toMatch(/^lang\s+name\s+train\s+dev\s+test\s+test-mine\s+test-udhr\s+dropped/);
      expect(summary).toMatch(/fr\s+French\s+\d+\s+4\s+6\s+-\s+\d+/);
    });

    it("holds out English without leakage: no test/dev/eval English sentence is in any train split", async () => {
      expect(manifest.heldOut).toMatchObject({ testSentences: 6, devSentences: 4, testMinCoverage: 3 });
      const keys = async (file: string) =>
        (await fsp.readFile(path.join(out, file), "utf8"))
          .split("\n")
          .filter(Boolean)
          .map((l) => englishKey(l.split("\t")[0]!));
      const heldOut = new Set<string>();
      for (const [split, files] of Object.entries(manifest.splits)) {
        if (split === "train") continue;
        for (const f of Object.values(files)) for (const k of await keys(f.file)) heldOut.add(k);
      }
      expect(heldOut.size).toBeGreaterThan(10 + 3);
      for (const f of Object.values(manifest.splits.train!)) {
        for (const k of await keys(f.file)) expect(heldOut.has(k), k).toBe(false);
      }
      // test is multi-way: the same English sentences, in the same order, in every language
      const orders = await Promise.all(["de", "fr", "ru"].map((l) => keys(`test/en-${l}.tsv`)));
      expect(orders[1]).toEqual(orders[0]);
      expect(orders[2]).toEqual(orders[0]);
      expect(orders[0]).toHaveLength(6);
    });

    it("opens the corpus: eval sets in both directions, training data, batches", async () => {
      const corpus = await openCorpus(out);
      const fr = await loadEvalSet(corpus, "test", "fr-en");
      expect(fr).toMatchObject({ srcLang: "fr", tgtLang: "en" });
      expect(fr.sources).toHaveLength(6);
      expect(fr.references[0]).toMatch(/number \d+$/);
      const mine = await loadEvalSet(corpus, "test-mine", "en-de");
      expect(mine.sources).toEqual([10, 11, 12].map((i) => msg("en", i)));
      await expect(loadEvalSet(corpus, "test", "fr-de")).rejects.toThrow(/must be 'en-xx' or 'xx-en'/);
      const data = await loadTrainingData(corpus);
      expect(data.tokenizer.vocabSize).toBeLessThanOrEqual(1000);
      const it = createBatchIterator(
        data,
        parseLoaderConfig({ maxTokens: 512, maxSourceLength: 64, maxTargetLength: 64 }),
      );
      const b = it.nextBatch();
      expect(b.size).toBeGreaterThan(0);
      expect(it.taskSpace.languages).toEqual(["en", "de", "fr", "ru"]);
      const decoded = data.tokenizer.decode(Array.from(b.tgtOutIds.subarray(0, b.tgtLengths[0]! - 1)));
      expect(decoded.length).toBeGreaterThan(0);
    });

    it("without apt: falls back to UDHR when allowed, else fails naming the missing command", async () => {
      const base = {
        cacheDir: path.join(root, "cache2"),
        languages: ["fr", "de"],
        sources: {
          debian: { packages: ["pkg-a"], aptGet: path.join(root, "no-such-apt-get") },
          handbook: "off" as const,
        },
        split: { testSize: 5, devSize: 2, minWords: 5 },
        tokenizer: { vocabSize: 1000, sampleSentences: 2000 },
      };
      const m = await prepareCorpus(
        parsePrepareConfig({
          ...base,
          out: path.join(root, "fallback"),
          sources: { ...base.sources, fallbackToUdhr: true },
        }),
      );
      expect(m.warnings[0]).toMatch(
        /Debian packages unavailable \(apt-get \(.*no-such-apt-get\) cannot run here: ENOENT\); falling back to UDHR/,
      );
      expect(m.languageStats.fr!.bySource.udhr).toBeGreaterThan(40);
      expect(m.splits["test-udhr"]).toBeUndefined();
      await expect(
        prepareCorpus(parsePrepareConfig({ ...base, out: path.join(root, "nofallback") })),
      ).rejects.toMatchObject({
        code: "APT_UNAVAILABLE",
        message: expect.stringMatching(/no-such-apt-get.*ENOENT/),
      });
    }, 60_000);

    it("rejects unknown languages and non-English-centric files before doing work", async () => {
      await expect(
        prepareCorpus(parsePrepareConfig({ out: path.join(root, "x"), languages: ["fr", "tlh"] })),
      ).rejects.toThrow(/prepare\.languages\[1\]: unknown language code 'tlh'/);
      await expect(
        prepareCorpus(
          parsePrepareConfig({
            out: path.join(root, "y"),
            languages: ["fr"],
            sources: {
              debian: { enabled: false },
              udhr: "off",
              files: [{ format: "tsv", path: "a.tsv", src: "de", tgt: "fr" }],
            },
          }),
        ),
      ).rejects.toThrow(/files\[0\]: de-fr is not English-centric/);
    });
  },
);
