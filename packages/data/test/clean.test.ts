import { describe, expect, it } from "vitest";

import {
  cleanPair,
  DEFAULT_CLEANING,
  englishKey,
  hasFormatSpecifier,
  hasMarkup,
  stripAccelerators,
} from "../src/index.js";

const keep = (en: string, xx: string, o = DEFAULT_CLEANING) => cleanPair(en, xx, o);

describe("cleaning rules", () => {
  it("1. splits multi-line messages: equal lines pair up, unequal lines join, paragraph mismatch drops", () => {
    expect(keep("Open the file\nClose the file", "Ouvrir le fichier\nFermer le fichier").kept).toEqual([
      ["Open the file", "Ouvrir le fichier"],
      ["Close the file", "Fermer le fichier"],
    ]);
    expect(keep("A long help text\nwrapped here.", "Un long texte d'aide sur une seule ligne.").kept).toEqual(
      [["A long help text wrapped here.", "Un long texte d'aide sur une seule ligne."]],
    );
    expect(
      keep("First paragraph.\n\nSecond paragraph.", "Premier paragraphe.\n\nSecond paragraphe.").kept,
    ).toHaveLength(2);
    expect(keep("First paragraph.\n\nSecond paragraph.", "Un seul paragraphe.")).toEqual({
      kept: [],
      skipped: ["multiline_mismatch"],
    });
  });

  it("2. strips accelerators: _ & ~ and CJK (_F) suffixes, leaves identifiers and && alone", () => {
    expect(stripAccelerators("Sa_ve As…")).toBe("Save As…");
    expect(stripAccelerators("&Open")).toBe("Open");
    expect(stripAccelerators("Tom && Jerry")).toBe("Tom & Jerry");
    expect(stripAccelerators("~File")).toBe("File");
    expect(stripAccelerators("ファイル(_F)")).toBe("ファイル");
    expect(stripAccelerators("打开(&O)")).toBe("打开");
    expect(stripAccelerators("snake_case_name")).toBe("snake_case_name");
    expect(stripAccelerators("~/Documents")).toBe("~/Documents");
    expect(keep("_Open File", "_Ouvrir le fichier").kept).toEqual([["Open File", "Ouvrir le fichier"]]);
  });

  it("3. collapses whitespace and NFC-normalises", () => {
    expect(keep("  Open \t the   file ", "Ouvrir  le\u00a0fichier").kept).toEqual([
      ["Open the file", "Ouvrir le fichier"],
    ]);
    expect(keep("Cafe menu", "Cafe\u0301 menu").kept[0]?.[1]).toBe("Café menu");
  });

  it("4–6. drops empty, untranslated copies and letter-less English", () => {
    expect(keep("Open", "  ").skipped).toEqual(["empty"]);
    expect(keep("Open", "_Open").skipped).toEqual(["untranslated"]);
    expect(keep("--:--", "--h--").skipped).toEqual(["no_letters"]);
  });

  it("7. strict mode drops printf, Qt, Python, brace and shell placeholders", () => {
    for (const s of [
      "%s files",
      "%d%%",
      "%1$s of %2$s",
      "%.2f MB",
      "%1 items",
      "%(name)s",
      "{0} items",
      "{name}",
      "Hello {}",
      "$" + "{HOME}",
      "$USER dir",
      "%{count}",
    ]) {
      expect(hasFormatSpecifier(s), s).toBe(true);
    }
    for (const s of ["Open the file", "100 percent", "Save As…", "{not a placeholder"]) {
      expect(hasFormatSpecifier(s), s).toBe(false);
    }
    expect(keep("%s files", "%s fichiers").skipped).toEqual(["format"]);
    expect(keep("%s files", "%s fichiers", { ...DEFAULT_CLEANING, strict: false }).kept).toHaveLength(1);
  });

  it("8. strict mode drops markup, entities and URLs", () => {
    for (const s of [
      "<b>Bold</b>",
      "Tom &amp; Jerry",
      "See https://example.org",
      "<span foo='x'>",
      "&#169;",
    ]) {
      expect(hasMarkup(s), s).toBe(true);
    }
    expect(hasMarkup("a < b and c > d")).toBe(false);
    expect(keep("<b>Warning</b>", "<b>Attention</b>").skipped).toEqual(["markup"]);
  });

  it("9–10. drops overlong sides and length-ratio outliers (UTF-8 bytes with slack)", () => {
    expect(keep("word ".repeat(200), "mot ".repeat(200)).skipped).toEqual(["too_long"]);
    expect(keep("Home", "Persönlicher Ordner").kept).toHaveLength(1); // short labels survive the slack
    expect(keep("File", "Datei in einem sehr langen und ausführlichen Satz beschrieben").skipped).toEqual([
      "length_ratio",
    ]);
    expect(keep("Open a new window for the selected document", "打开新窗口").kept).toHaveLength(1); // bytes, not characters
  });

  it("english keys unify case, spacing and trailing punctuation", () => {
    expect(englishKey("Open File…")).toBe(englishKey("open  file"));
    expect(englishKey("Open File?")).toBe("open file");
    expect(englishKey("Open a file")).not.toBe(englishKey("Open the file"));
  });
});
