import { spawnSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { DataError, parseMo, parsePluralForms, parsePo } from "../src/index.js";
import { catalogPairs } from "../src/readers/catalog.js";
import { buildMo, latin2, tempDir } from "./fixtures/gettext.js";

const RU_PLURAL =
  "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);";

function errorOf(fn: () => unknown): DataError {
  try {
    fn();
  } catch (e) {
    if (e instanceof DataError) return e;
    throw e;
  }
  throw new Error("expected a DataError");
}

describe("plural forms", () => {
  it("evaluates the Russian formula (one / few / many)", () => {
    const p = parsePluralForms(RU_PLURAL);
    expect(p.nplurals).toBe(3);
    expect([1, 2, 4, 5, 11, 12, 21, 22, 25, 101, 111].map(p.index)).toEqual([
      0, 1, 1, 2, 2, 2, 0, 1, 2, 0, 2,
    ]);
  });
  it("handles nplurals=1, plain 'n != 1', Arabic's six forms, and rejects junk", () => {
    expect(parsePluralForms("nplurals=1; plural=0;").index(7)).toBe(0);
    expect([0, 1, 2].map(parsePluralForms("nplurals=2; plural=(n != 1);").index)).toEqual([1, 0, 1]);
    const ar = parsePluralForms(
      "nplurals=6; plural=n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 : n%100>=11 ? 4 : 5;",
    );
    expect([0, 1, 2, 5, 15, 100].map(ar.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(() => parsePluralForms("nplurals=2; plural=n ! 1;")).toThrow(/unexpected/);
    expect(() => parsePluralForms("plural=n;")).toThrow(/nplurals/);
  });
});

describe(".mo reader", () => {
  const entries = [
    { msgid: "Open File", msgstr: "Ouvrir le fichier" },
    { context: "menu", msgid: "Open", msgstr: "Ouvrir" },
    { context: "verb", msgid: "Open", msgstr: "Ouvre" },
    { msgid: "One file", plural: "Many files", msgstr: ["Un fichier", "Des fichiers"] },
    { msgid: "Untranslated", msgstr: "" },
  ];

  for (const littleEndian of [true, false]) {
    it(`reads contexts, plurals and the header (${littleEndian ? "little" : "big"} endian)`, () => {
      const cat = parseMo(buildMo(entries, { littleEndian }), "fr.mo");
      expect(cat.charset).toBe("utf-8");
      expect(cat.plural?.nplurals).toBe(2);
      const byKey = new Map(cat.messages.map((m) => [`${m.context ?? ""}|${m.msgid}`, m]));
      expect(byKey.get("menu|Open")?.msgstr).toEqual(["Ouvrir"]);
      expect(byKey.get("verb|Open")?.msgstr).toEqual(["Ouvre"]);
      expect(byKey.get("|One file")).toMatchObject({
        msgidPlural: "Many files",
        msgstr: ["Un fichier", "Des fichiers"],
      });
      const pairs = [...catalogPairs(cat)];
      expect(
        pairs
          .filter((p) => "en" in p)
          .map((p) => "en" in p && `${p.en}=${p.xx}`)
          .sort(),
      ).toEqual(
        [
          "Many files=Des fichiers",
          "One file=Un fichier",
          "Open File=Ouvrir le fichier",
          "Open=Ouvre",
          "Open=Ouvrir",
        ].sort(),
      );
      expect(pairs.filter((p) => "skip" in p)).toHaveLength(1);
    });
  }

  it("picks plural forms with the catalog's formula (Russian: n=1 → form 0, n=5 → form 2)", () => {
    const mo = buildMo([{ msgid: "%d file", plural: "%d files", msgstr: ["файл", "файла", "файлов"] }], {
      header: `Content-Type: text/plain; charset=UTF-8\nPlural-Forms: ${RU_PLURAL}\n`,
    });
    const pairs = [...catalogPairs(parseMo(mo, "ru.mo"))];
    expect(pairs).toEqual([
      { en: "%d file", xx: "файл", where: "ru.mo#1" },
      { en: "%d files", xx: "файлов", where: "ru.mo#1" },
    ]);
  });

  it("decodes a non-UTF-8 charset named in the header (ISO-8859-2)", () => {
    const mo = buildMo([{ msgid: "Close", msgstr: "Zamknij łącze" }], {
      header: "Content-Type: text/plain; charset=ISO-8859-2\n",
      encode: latin2,
    });
    const cat = parseMo(mo, "pl.mo");
    expect(cat.charset).toBe("iso-8859-2");
    expect(cat.messages[0]?.msgstr).toEqual(["Zamknij łącze"]);
  });

  it("keeps a catalog whose Plural-Forms header is broken (forms 0/1, reason recorded) and decodes cp932", () => {
    const mo = buildMo([{ msgid: "One file", plural: "Files", msgstr: ["ファイル"] }], {
      header: "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplural=1; plural=0;\n",
    });
    const cat = parseMo(mo, "ja.mo");
    expect(cat.plural).toBeUndefined();
    expect(cat.pluralError).toMatch(/has no nplurals=N/);
    expect([...catalogPairs(cat)]).toEqual([
      { en: "One file", xx: "ファイル", where: "ja.mo#1" },
      { en: "Files", xx: "ファイル", where: "ja.mo#1" }, // one form serves both counts
    ]);
    const sjis = (s: string) =>
      Uint8Array.from(
        s === "ファイル"
          ? [0x83, 0x74, 0x83, 0x40, 0x83, 0x43, 0x83, 0x8b]
          : Array.from(s, (c) => c.charCodeAt(0)),
      );
    const cp932 = buildMo([{ msgid: "File", msgstr: "ファイル" }], {
      header: "Content-Type: text/plain; charset=CP932\n",
      encode: sjis,
    });
    expect(parseMo(cp932, "ja.sjis.mo").messages[0]?.msgstr).toEqual(["ファイル"]);
  });

  it("rejects an unknown charset, invalid bytes, a wrong magic and truncation with file names", () => {
    const unknown = buildMo([{ msgid: "a", msgstr: "b" }], {
      header: "Content-Type: text/plain; charset=X-NOPE-8\n",
    });
    expect(errorOf(() => parseMo(unknown, "x.mo"))).toMatchObject({
      code: "UNSUPPORTED_CHARSET",
      message: expect.stringMatching(/x\.mo: charset 'x-nope-8'/),
    });

    const bad = buildMo([{ msgid: "Close", msgstr: "ok" }]);
    const at = Buffer.from(bad).indexOf(Buffer.from("ok"));
    bad[at] = 0xff; // not UTF-8
    expect(errorOf(() => parseMo(bad, "y.mo"))).toMatchObject({
      code: "INVALID_ENCODING",
      message: expect.stringMatching(/^y\.mo#\d+: bytes are not valid utf-8/),
    });
    const skipped = parseMo(bad, "y.mo", { onInvalid: "skip" });
    expect(skipped.invalidEntries).toBe(1);
    expect(skipped.messages).toHaveLength(0);

    const wrong = buildMo([{ msgid: "a", msgstr: "b" }]);
    wrong[0] = 0x00;
    expect(errorOf(() => parseMo(wrong, "w.mo"))).toMatchObject({
      code: "BAD_MO",
      message: expect.stringMatching(/w\.mo: wrong magic/),
    });

    const full = buildMo(entries);
    expect(errorOf(() => parseMo(full.subarray(0, 20), "t.mo")).message).toMatch(
      /t\.mo: 20 bytes is too short/,
    );
    expect(errorOf(() => parseMo(full.subarray(0, 40), "t.mo")).message).toMatch(
      /t\.mo: the original-strings table .* past the end/,
    );
    expect(errorOf(() => parseMo(full.subarray(0, full.length - 30), "t.mo")).message).toMatch(
      /t\.mo#\d+: translated string .* runs past the end/,
    );
    expect(errorOf(() => parseMo(new Uint8Array(0), "e.mo")).code).toBe("BAD_MO");
  });
});

const PO = `# French translation
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\\n"

#: src/main.c:10
msgid "Open"
msgstr "Ouvrir"

msgctxt "menu"
msgid "Save"
msgstr "Enregistrer"

#, fuzzy
msgid "Quit"
msgstr "Quitter"

msgid ""
"Line one\\n"
"Line \\"two\\"\\t!"
msgstr "Ligne un\\nLigne « deux »\\t!"

msgid "One item"
msgid_plural "Items"
msgstr[0] "Un élément"
msgstr[1] "Éléments"

#~ msgid "Old"
#~ msgstr "Vieux"
`;

describe(".po reader", () => {
  it("reads contexts, continuation lines, escapes, fuzzy flags and plurals; skips obsolete entries", () => {
    const cat = parsePo(Buffer.from(PO), "fr.po");
    expect(cat.plural?.index(1)).toBe(0);
    expect(cat.messages.map((m) => m.msgid)).toEqual([
      "Open",
      "Save",
      "Quit",
      'Line one\nLine "two"\t!',
      "One item",
    ]);
    expect(cat.messages[1]).toMatchObject({ context: "menu", msgstr: ["Enregistrer"], where: "fr.po:11" });
    expect(cat.messages[2]?.fuzzy).toBe(true);
    expect(cat.messages[3]?.msgstr).toEqual(["Ligne un\nLigne « deux »\t!"]);
    expect(cat.messages[4]).toMatchObject({ msgidPlural: "Items", msgstr: ["Un élément", "Éléments"] });
    const kinds = [...catalogPairs(cat)].map((p) => ("skip" in p ? p.skip : "pair"));
    expect(kinds).toEqual(["pair", "pair", "fuzzy", "pair", "pair", "pair"]);
  });

  it("decodes the header's charset and reports syntax errors with file:line", () => {
    const latin = Buffer.concat([
      Buffer.from(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=ISO-8859-2\\n"\n\nmsgid "Close"\nmsgstr "',
      ),
      Buffer.from(latin2("Zamknij łącze")),
      Buffer.from('"\n'),
    ]);
    expect(parsePo(latin, "pl.po").messages[0]?.msgstr).toEqual(["Zamknij łącze"]);
    expect(errorOf(() => parsePo(Buffer.from('msgid "a"\nmsgstr "b\n'), "bad.po"))).toMatchObject({
      code: "BAD_PO",
      message: expect.stringMatching(/^bad\.po:2: expected a double-quoted string/),
    });
    expect(errorOf(() => parsePo(Buffer.from('msgid "a"\nmsgstr "b"\nfoo "c"\n'), "bad.po")).message).toMatch(
      /^bad\.po:3: expected msgctxt/,
    );
    expect(
      errorOf(() => parsePo(Buffer.from('msgid "a"\n"x"\n\nmsgid "b"\nmsgstr "c"\n'), "bad.po")).message,
    ).toMatch(/msgid without msgstr/);
    const utf8Bad = Buffer.from('msgid "a"\nmsgstr "\xff"\n', "latin1");
    expect(errorOf(() => parsePo(utf8Bad, "u.po"))).toMatchObject({
      code: "INVALID_ENCODING",
      message: expect.stringMatching(/^u\.po:2:/),
    });
    expect(errorOf(() => parsePo(new Uint8Array(0), "empty.po")).code).toBe("EMPTY_FILE");
  });

  const haveMsgfmt = spawnSync("msgfmt", ["--version"], { stdio: "ignore" }).status === 0;
  it.skipIf(!haveMsgfmt)(
    `agrees with GNU msgfmt: the .po and the .mo it compiles give the same pairs${haveMsgfmt ? "" : " [skipped: msgfmt not installed]"}`,
    async () => {
      const dir = await tempDir();
      const po = path.join(dir, "fr.po");
      const mo = path.join(dir, "fr.mo");
      await fsp.writeFile(po, PO.replace("#, fuzzy\n", ""));
      const r = spawnSync("msgfmt", ["-o", mo, po], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      const key = (c: ReturnType<typeof parsePo>) =>
        [...catalogPairs(c)].map((p) => ("en" in p ? `${p.en}=${p.xx}` : p.skip)).sort();
      expect(key(parseMo(new Uint8Array(await fsp.readFile(mo)), mo))).toEqual(
        key(parsePo(await fsp.readFile(po), po)),
      );
      await fsp.rm(dir, { recursive: true, force: true });
    },
  );
});
