import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { describe, expect, it } from "vitest";

import {
  DataError,
  loadTokenizer,
  saveTokenizer,
  Tokenizer,
  trainTokenizer,
  WordCounter,
} from "../src/index.js";
import { BYTE_TOKENS, trainBpe } from "../src/tokenizer/bpe_train.js";
import { mulberry32 } from "../src/util/hash.js";
import { tempDir } from "./fixtures/gettext.js";
import { udhrPairs } from "./fixtures/text.js";

const pairs = await udhrPairs({ fr: "fra", de: "deu_1996", ru: "rus", zh_CN: "cmn_hans" });
const counter = new WordCounter();
for (const rows of pairs.values()) {
  for (const [e, x] of rows) {
    counter.add(e);
    counter.add(x);
  }
}
const tok = trainTokenizer(counter, { vocabSize: 1500, languages: ["en", "fr", "de", "ru", "zh_CN"] });

const SAMPLES = [
  "All human beings are born free and equal in dignity and rights.",
  "Tous les êtres humains naissent libres et égaux en dignité et en droits.",
  "Все люди рождаются свободными и равными в своем достоинстве и правах.",
  "人人生而自由,在尊严和权利上一律平等。",
  // scripts and symbols absent from training: byte fallback must round-trip them
  "ყველა ადამიანი იბადება თავისუფალი",
  "எல்லா மனிதர்களும் சுதந்திரமாக",
  "모든 인간은 태어날 때부터 자유로우며 🙂👍🏽",
  "double  and trailing spaces  ",
  "tabs\tand\nnewlines",
  "",
];

describe("tokenizer", () => {
  it("lays out special tokens, language tags and byte tokens first", () => {
    expect([tok.padId, tok.bosId, tok.eosId, tok.unkId, tok.maskId]).toEqual([0, 1, 2, 3, 4]);
    expect(["en", "de", "fr", "ru", "zh_CN"].map((l) => tok.idToToken(tok.langTag(l)))).toEqual([
      "<2en>",
      "<2de>",
      "<2fr>",
      "<2ru>",
      "<2zh_CN>",
    ]);
    expect(tok.langTag("en")).toBe(5); // table order: en first
    expect(tok.idToToken(10)).toBe("<0x00>");
    expect(tok.vocabSize).toBe(1500);
    expect(() => tok.langTag("ja")).toThrow(/no <2ja> tag; its languages are: en de fr ru zh_CN/);
    expect(() => tok.langTag("xx")).toThrow(DataError);
  });

  it("round-trips text exactly (NFC), including scripts it never saw", () => {
    for (const s of SAMPLES) expect(tok.decode(tok.encode(s)), JSON.stringify(s)).toBe(s.normalize("NFC"));
    // As in Hugging Face's Metaspace, one leading space is the word marker: a text that
    // already starts with a space decodes without it (corpus text is always trimmed).
    expect(tok.decode(tok.encode("  two leading"))).toBe(" two leading");
    const georgian = tok.encode(SAMPLES[4]!);
    expect(Array.from(georgian).every((id) => (id >= 10 && id < 266) || tok.idToToken(id) === "▁")).toBe(
      true,
    );
  });

  it("skips special tokens when decoding unless asked", () => {
    const ids = [tok.langTag("fr"), ...tok.encode("Bonjour"), tok.eosId, tok.padId];
    expect(tok.decode(ids)).toBe("Bonjour");
    expect(tok.decode(ids, { skipSpecialTokens: false })).toBe("<2fr> Bonjour</s><pad>");
    expect(() => tok.decode([tok.vocabSize])).toThrow(/id 1500 at position 0 is outside/);
  });

  it("compresses trained languages (tokens per character well below 1)", () => {
    const s = SAMPLES[1]!;
    expect(tok.encode(s).length / s.length).toBeLessThan(0.5);
  });

  it("saves a Hugging Face tokenizer.json that loads back and that tokenizers.js encodes identically", async () => {
    const dir = await tempDir();
    const file = `${dir}/tokenizer.json`;
    await saveTokenizer(tok, file);
    const back = await loadTokenizer(file);
    const hf = new HfTokenizer(tok.toJSON() as unknown as Record<string, unknown>, {});
    for (const s of SAMPLES) {
      const ids = Array.from(tok.encode(s));
      expect(Array.from(back.encode(s))).toEqual(ids);
      expect(hf.encode(s, { add_special_tokens: false }).ids, JSON.stringify(s)).toEqual(ids);
      if (s.trim() !== "" && !s.includes("\t")) expect(hf.decode(ids)).toBe(back.decode(ids));
    }
    await expect(loadTokenizer(`${dir}/missing.json`)).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(() => Tokenizer.fromJSON({ model: { type: "WordPiece" } }, "x.json")).toThrow(
      /x\.json: expected a Hugging Face tokenizer\.json with a BPE model/,
    );
  });

  it("BPE training matches a plain-loop reference (recount every pair each step)", () => {
    const words = new Map<string, number>();
    const rng = mulberry32(7);
    const letters = "abcde▁";
    for (let i = 0; i < 300; i++) {
      let w = "▁";
      const len = 1 + Math.floor(rng() * 6);
      for (let k = 0; k < len; k++) w += letters[Math.floor(rng() * 5)];
      words.set(w, (words.get(w) ?? 0) + 1 + Math.floor(rng() * 5));
    }
    const specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"];
    const model = trainBpe(words, {
      vocabSize: 300,
      specialTokens: specials,
      characterCoverage: 1,
      maxAlphabet: 100,
      minFrequency: 2,
    });
    // Reference: same alphabet ids, merges recomputed from scratch every step.
    const vocab = model.vocab.slice(0, specials.length + BYTE_TOKENS.length + model.alphabet.length);
    const id = new Map(vocab.map((t, i) => [t, i]));
    const seqs = [...words].map(([w, c]) => ({ s: Array.from(w, (ch) => id.get(ch)!), c }));
    const ref: Array<[string, string]> = [];
    while (vocab.length < 300) {
      const counts = new Map<string, number>();
      for (const { s, c } of seqs)
        for (let i = 0; i + 1 < s.length; i++)
          counts.set(`${s[i]},${s[i + 1]}`, (counts.get(`${s[i]},${s[i + 1]}`) ?? 0) + c);
      let best: [number, number] | undefined;
      let bestC = 0;
      for (const [k, c] of counts) {
        const [a, b] = k.split(",").map(Number) as [number, number];
        if (c > bestC || (c === bestC && best && (a < best[0] || (a === best[0] && b < best[1])))) {
          best = [a, b];
          bestC = c;
        }
      }
      if (!best || bestC < 2) break;
      const merged = vocab[best[0]]! + vocab[best[1]]!;
      let nid = id.get(merged);
      if (nid === undefined) {
        nid = vocab.length;
        vocab.push(merged);
        id.set(merged, nid);
      }
      ref.push([vocab[best[0]]!, vocab[best[1]]!]);
      for (const q of seqs) {
        const out: number[] = [];
        for (let i = 0; i < q.s.length; i++) {
          if (i + 1 < q.s.length && q.s[i] === best[0] && q.s[i + 1] === best[1]) {
            out.push(nid);
            i++;
          } else out.push(q.s[i]!);
        }
        q.s = out;
      }
    }
    expect(model.merges).toEqual(ref);
    expect(model.vocab).toEqual(vocab);
  });
});
