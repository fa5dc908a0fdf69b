// Tokenizer edge cases, each expected value worked out by hand from the rules in
// src/tokenizers/*.ts (mteval-v13a / mteval-v14 as sacreBLEU implements them).
import { describe, expect, it } from "vitest";

import { getTokenizer, isTokenizerName, MetricsError, TOKENIZER_NAMES, tokenize } from "../src/index.js";
import { isChineseCodePoint } from "../src/tokenizers/tok_zh.js";

describe("13a", () => {
  const t = (s: string) => tokenize(s, "13a");

  it.each([
    // ASCII symbols split on both sides; period/comma after a non-digit split off.
    ["Hello, world!", "Hello , world !"],
    ["(hi) [x] {y} a/b x@y.com", "( hi ) [ x ] { y } a / b x @ y . com"],
    ['say "no" #1 50% a&b a+b=c', 'say " no " # 1 50 % a & b a + b = c'],
    ["a:b;c<d>e?f", "a : b ; c < d > e ? f"],
    ["x^2 a_b `c` a|b ~x", "x ^ 2 a _ b ` c ` a | b ~ x"],
    // Numbers: separators between digits stay, a final period goes (the line is padded).
    ["1,000.5 people", "1,000.5 people"],
    ["It costs $5.00.", "It costs $ 5.00 ."],
    ["In 1990.", "In 1990 ."],
    ["3.14, 2.71", "3.14 , 2.71"],
    ["5.a and a.5", "5 . a and a . 5"],
    // Hyphen: split only after a digit.
    ["1990-2000 e-mail -5 well-known", "1990 - 2000 e-mail -5 well-known"],
    ["x-1", "x-1"],
    // Apostrophes are not in the symbol set.
    ["don't 'quoted' rock'n'roll", "don't 'quoted' rock'n'roll"],
    // Abbreviations and ellipses.
    ["Mr. Smith", "Mr . Smith"],
    ["U.S.A.", "U . S . A ."],
    ["wait...", "wait . . ."],
    ["...", ". . ."],
    // Non-ASCII punctuation is left alone by 13a.
    ["café «bien» ¿qué? 中文，测试。", "café «bien» ¿qué ? 中文，测试。"],
    // HTML entities, unescaped in this order: &quot; &amp; &lt; &gt;.
    ["a &amp; b &quot;c&quot; &lt;d&gt;", 'a & b " c " < d >'],
    ["&amp;lt;", "<"],
    ["&amp;quot;", "& quot ;"],
    ["&nbsp;", "& nbsp ;"],
    // <skipped>, hyphenation across a newline, newlines.
    ["a <skipped> b", "a b"],
    ["hyphen-\nated", "hyphenated"],
    ["two\nlines", "two lines"],
    // Whitespace: Python's set, collapsed; zero-width space and BOM are not whitespace.
    ["  lead and trail  ", "lead and trail"],
    ["a\tb\u3000c\u00a0d\u001ce\u0085f", "a b c d e f"],
    ["a\u200bb a\ufeffb", "a\u200bb a\ufeffb"],
    ["", ""],
    ["   ", ""],
  ])("13a(%j) = %j", (input, expected) => {
    expect(t(input)).toBe(expected);
  });
});

describe("intl", () => {
  const t = (s: string) => tokenize(s, "intl");

  it.each([
    ["Hello, world!", "Hello , world !"],
    // Punctuation between two numbers stays, in any script.
    ["1,000.5", "1,000.5"],
    [
      "\u0663\u066b\u0661\u0664 \u0661\u066c\u0660\u0660\u0660",
      "\u0663\u066b\u0661\u0664 \u0661\u066c\u0660\u0660\u0660",
    ],
    // No padding: a number keeps a sentence-final period (mteval-v14's quirk) ...
    ["In 1990.", "In 1990."],
    // ... but not one followed by more text.
    ["1990. Next", "1990 . Next"],
    // Unicode punctuation of every kind (Po, Ps/Pe, Pi/Pf, Pd) is split.
    ["«Bonjour» ¿Qué? l'homme a—b", "« Bonjour » ¿ Qué ? l ' homme a — b"],
    ["中文，测试。", "中文 ， 测试 。"],
    ["“quoted”", "“ quoted ”"],
    // Symbols (Sc, Sm, Sk, So) always stand alone, also next to digits.
    ["$5 €5 a+b x^2 © 😀x", "$ 5 € 5 a + b x ^ 2 © 😀 x"],
    ["5% of", "5 % of"],
    ["5%", "5%"],
    // Adjacent punctuation: each substitution is left-to-right and non-overlapping.
    ["a,,b", "a , , b"],
    ["wait...", "wait . . ."],
    // Numbers of category No count as numbers.
    ["a½ ½.½", "a½ ½.½"],
    // Hyphen-minus is punctuation (Pd): split unless between digits.
    ["e-mail 1990-2000", "e - mail 1990-2000"],
    ["  lead  trail  ", "lead trail"],
    ["", ""],
  ])("intl(%j) = %j", (input, expected) => {
    expect(t(input)).toBe(expected);
  });
});

describe("zh", () => {
  const t = (s: string) => tokenize(s, "zh");

  it.each([
    ["我爱北京。", "我 爱 北 京 。"],
    ["GPT-4模型", "GPT-4 模 型"],
    ["3.5元", "3.5 元"],
    // Full-width forms (U+FF00..U+FFEF) are split character by character.
    ["１２３，ＡＢ", "１ ２ ３ ， Ａ Ｂ"],
    // The effective U+2001..U+2A6D range: curly quotes, euro sign, arrows are split ...
    ["“你好”", "“ 你 好 ”"],
    ["€5 a→b", "€ 5 a → b"],
    // ... while CJK Extension B (astral) is never split.
    ["𠀀𠀁", "𠀀𠀁"],
    // ASCII punctuation as in 13a, but without padding or unescaping.
    ["Hello, world!", "Hello , world !"],
    ["In 1990.", "In 1990."],
    ["&amp;", "& amp ;"],
    ["  前后  ", "前 后"],
    ["", ""],
  ])("zh(%j) = %j", (input, expected) => {
    expect(t(input)).toBe(expected);
  });

  it("treats exactly the effective ranges as Chinese", () => {
    const inside = [
      0x3400, 0x4db5, 0x4e00, 0x9fbb, 0xf900, 0xfad9, 0x2001, 0x201c, 0x20ac, 0x2a6d, 0x2f81, 0x2fa1,
    ];
    const outside = [
      0x2000, 0x2a6e, 0x2e7f, 0x2fe0, 0x3040, 0x9fbc, 0xfa2e, 0xfada, 0x20000, 0x2a6d6, 0x2f800, 0x41,
    ];
    for (const cp of inside) expect(isChineseCodePoint(cp), cp.toString(16)).toBe(true);
    for (const cp of outside) expect(isChineseCodePoint(cp), cp.toString(16)).toBe(false);
  });
});

describe("char and none", () => {
  it("char makes every code point a token, astral ones included", () => {
    expect(tokenize("ab c", "char")).toBe("a b   c");
    expect(tokenize("😀x", "char")).toBe("😀 x");
    expect(tokenize("", "char")).toBe("");
  });

  it("none returns the line untouched", () => {
    expect(tokenize("  Hello, world!  ", "none")).toBe("  Hello, world!  ");
  });
});

describe("tokenizer registry", () => {
  it("lists the valid names when asked for an unknown one", () => {
    expect(TOKENIZER_NAMES).toEqual(["13a", "intl", "zh", "char", "none"]);
    expect(isTokenizerName("intl")).toBe(true);
    expect(isTokenizerName("toString")).toBe(false);
    expect(() => getTokenizer("13b")).toThrowError(
      new MetricsError(
        "UNKNOWN_TOKENIZER",
        "unknown tokenizer '13b'; valid tokenizers: 13a, intl, zh, char, none",
      ),
    );
    try {
      getTokenizer("ja-mecab");
    } catch (e) {
      expect((e as MetricsError).code).toBe("UNKNOWN_TOKENIZER");
    }
  });
});
