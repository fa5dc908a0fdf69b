// PolyMoE's joint subword tokenizer: NFC → Metaspace ("▁", prepended) → BPE with byte
// fallback, saved and loaded as a Hugging Face tokenizer.json that the Rust
// `tokenizers` library and tokenizers.js read and encode identically (tested).
//
// Id layout: <pad>=0 <s>=1 </s>=2 <unk>=3 <mask>=4, then one <2xx> tag per language,
// then the 256 byte tokens <0x00>..<0xFF>, the base alphabet, and the merged pieces.
import { promises as fsp } from "node:fs";

import { DataError } from "../errors.js";
import { languageInfo } from "../languages.js";
import { writeFileAtomic } from "../util/fs.js";
import { type BpeModel, BYTE_TOKENS } from "./bpe_train.js";

export const SPECIAL_TOKENS = {
  pad: "<pad>",
  bos: "<s>",
  eos: "</s>",
  unk: "<unk>",
  mask: "<mask>",
} as const;

/** The `<2xx>` tag of a language code. */
export const langTagToken = (lang: string) => `<2${lang}>`;

const META = "▁";
const PAIR = 2097152;

/** Hugging Face tokenizer.json, the subset PolyMoE writes and reads. */
export interface HfTokenizerJson {
  version: string;
  truncation: null;
  padding: null;
  added_tokens: Array<{
    id: number;
    content: string;
    single_word: boolean;
    lstrip: boolean;
    rstrip: boolean;
    normalized: boolean;
    special: boolean;
  }>;
  normalizer: { type: "NFC" } | null;
  pre_tokenizer: { type: "Metaspace"; replacement: string; prepend_scheme: "always"; split: boolean };
  post_processor: null;
  decoder: unknown;
  model: {
    type: "BPE";
    dropout: null;
    unk_token: string;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: boolean;
    byte_fallback: boolean;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    merges: string[];
  };
}

export interface DecodeOptions {
  /** Drop pad/bos/eos/unk/mask and language tags (default true). */
  skipSpecialTokens?: boolean;
}

/**
 * A trained tokenizer. `encode` returns subword ids without special tokens
 * (`<int32>[tokens]`); examples add tags, bos and eos themselves.
 */
export class Tokenizer {
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly maskId: number;
  /** Languages with a `<2xx>` tag, in id order. */
  readonly languages: readonly string[];
  private readonly vocab: string[];
  private readonly ids: Map<string, number>;
  private readonly mergeIds: Map<number, number>;
  private readonly mergeRank: Map<number, number>;
  private readonly tags: Map<string, number>;
  private readonly special: Uint8Array;
  private readonly wordStart: Uint8Array;
  private readonly byteBase: number;
  private readonly cache = new Map<string, Int32Array>();
  private readonly cacheLimit = 1 << 18;
  private readonly utf8 = new TextEncoder();

  constructor(vocab: string[], merges: ReadonlyArray<readonly [string, string]>) {
    this.vocab = vocab;
    this.vocabSize = vocab.length;
    this.ids = new Map(vocab.map((t, i) => [t, i]));
    const need = (t: string) => {
      const id = this.ids.get(t);
      if (id === undefined)
        throw new DataError("BAD_TOKENIZER", `tokenizer has no '${t}' token (required by PolyMoE)`);
      return id;
    };
    this.padId = need(SPECIAL_TOKENS.pad);
    this.bosId = need(SPECIAL_TOKENS.bos);
    this.eosId = need(SPECIAL_TOKENS.eos);
    this.unkId = need(SPECIAL_TOKENS.unk);
    this.maskId = need(SPECIAL_TOKENS.mask);
    this.byteBase = need(BYTE_TOKENS[0]!);
    for (let b = 0; b < 256; b++) {
      if (this.ids.get(BYTE_TOKENS[b]!) !== this.byteBase + b) {
        throw new DataError(
          "BAD_TOKENIZER",
          `byte tokens must be contiguous: ${BYTE_TOKENS[b]} is not id ${this.byteBase + b}`,
        );
      }
    }
    this.tags = new Map();
    this.special = new Uint8Array(vocab.length);
    for (const id of [this.padId, this.bosId, this.eosId, this.unkId, this.maskId]) this.special[id] = 1;
    vocab.forEach((t, i) => {
      const m = /^<2([A-Za-z_]+)>$/.exec(t);
      if (m) {
        this.tags.set(m[1]!, i);
        this.special[i] = 1;
      }
    });
    this.languages = [...this.tags.keys()];
    this.wordStart = new Uint8Array(vocab.length);
    vocab.forEach((t, i) => {
      if (t.startsWith(META)) this.wordStart[i] = 1;
    });
    this.mergeIds = new Map();
    this.mergeRank = new Map();
    merges.forEach(([a, b], rank) => {
      const ia = this.ids.get(a);
      const ib = this.ids.get(b);
      const im = this.ids.get(a + b);
      if (ia === undefined || ib === undefined || im === undefined) {
        throw new DataError(
          "BAD_TOKENIZER",
          `merge #${rank} '${a} ${b}' uses a token missing from the vocabulary`,
        );
      }
      const k = ia * PAIR + ib;
      if (!this.mergeRank.has(k)) {
        this.mergeRank.set(k, rank);
        this.mergeIds.set(k, im);
      }
    });
  }

  /** Builds a tokenizer from a trained model. */
  static fromModel(model: BpeModel): Tokenizer {
    return new Tokenizer(model.vocab, model.merges);
  }

  /** Id of the `<2xx>` tag; UNKNOWN_LANGUAGE when the tokenizer has no tag for `lang`. */
  langTag(lang: string): number {
    const id = this.tags.get(lang);
    if (id === undefined) {
      languageInfo(lang); // throws with the nearest valid codes when the code itself is unknown
      throw new DataError(
        "UNKNOWN_LANGUAGE",
        `tokenizer has no <2${lang}> tag; its languages are: ${this.languages.join(" ")}. Rebuild it with '${lang}' in the language list.`,
      );
    }
    return id;
  }

  /** Token string of an id. */
  idToToken(id: number): string | undefined {
    return this.vocab[id];
  }

  /** Id of a token string. */
  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }

  /** True for pad/bos/eos/unk/mask and language tags. */
  isSpecial(id: number): boolean {
    return this.special[id] === 1;
  }

  /** True when the token starts a word (begins with "▁"); denoising masks whole words. */
  isWordStart(id: number): boolean {
    return this.wordStart[id] === 1;
  }

  /**
   * Encodes text to subword ids: `<int32>[tokens]` (no tags, no bos/eos). `decode(encode(t))`
   * gives back `t.normalize("NFC")` for any text, scripts never seen included (byte
   * fallback) — except that, as in Hugging Face's Metaspace, a text that starts with a space
   * loses that one space (the leading "▁" is the word marker).
   */
  encode(text: string): Int32Array {
    const out: number[] = [];
    this.encodeInto(text, out);
    return Int32Array.from(out);
  }

  /** Encodes text and appends the ids to `out` (the allocation-light form); returns the count. */
  encodeInto(text: string, out: number[]): number {
    const start = out.length;
    let s = text.normalize("NFC").replaceAll(" ", META);
    if (s.length === 0) return 0;
    if (!s.startsWith(META)) s = META + s;
    let from = 0;
    while (from < s.length) {
      let to = s.indexOf(META, from + 1);
      if (to < 0) to = s.length;
      const word = s.slice(from, to);
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.bpeWord(word);
        if (this.cache.size >= this.cacheLimit) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
      from = to;
    }
    return out.length - start;
  }

  private bpeWord(word: string): Int32Array {
    const cps = Array.from(word);
    let syms: number[] = [];
    const pending: string[] = []; // characters outside the vocabulary, by negative index
    for (const ch of cps) {
      const id = this.ids.get(ch);
      if (id !== undefined && !this.special[id]) syms.push(id);
      else {
        pending.push(ch);
        syms.push(-pending.length);
      }
    }
    // Apply merges by rank, leftmost first, until none applies.
    for (;;) {
      let bestRank = Number.POSITIVE_INFINITY;
      let bestKey = -1;
      for (let i = 0; i + 1 < syms.length; i++) {
        const a = syms[i]!;
        const b = syms[i + 1]!;
        if (a < 0 || b < 0) continue;
        const r = this.mergeRank.get(a * PAIR + b);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          bestKey = a * PAIR + b;
        }
      }
      if (bestKey < 0) break;
      const a = Math.floor(bestKey / PAIR);
      const b = bestKey - a * PAIR;
      const m = this.mergeIds.get(bestKey)!;
      const next: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          next.push(m);
          i++;
        } else next.push(syms[i]!);
      }
      syms = next;
    }
    // Byte fallback for characters outside the vocabulary.
    const out: number[] = [];
    for (const id of syms) {
      if (id >= 0) out.push(id);
      else for (const byte of this.utf8.encode(pending[-id - 1]!)) out.push(this.byteBase + byte);
    }
    return Int32Array.from(out);
  }

  /** Decodes ids (`ArrayLike<number>` of `[tokens]`) back to text. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? true;
    let text = "";
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length > 0) {
        text += new TextDecoder("utf-8").decode(Uint8Array.from(bytes));
        bytes = [];
      }
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id >= this.byteBase && id < this.byteBase + 256) {
        bytes.push(id - this.byteBase);
        continue;
      }
      flush();
      if (skip && this.special[id]) continue;
      const t = this.vocab[id];
      if (t === undefined)
        throw new DataError(
          "INVALID_ARGUMENT",
          `decode: id ${id} at position ${i} is outside [0, ${this.vocabSize})`,
        );
      text += t.replaceAll(META, " ");
    }
    flush();
    return text.startsWith(" ") ? text.slice(1) : text;
  }

  /** The Hugging Face tokenizer.json object. */
  toJSON(): HfTokenizerJson {
    const vocab: Record<string, number> = {};
    this.vocab.forEach((t, i) => {
      vocab[t] = i;
    });
    const merges: string[] = [];
    const byRank = [...this.mergeRank.entries()].sort((x, y) => x[1] - y[1]);
    for (const [k] of byRank) {
      const a = Math.floor(k / PAIR);
      merges.push(`${this.vocab[a]} ${this.vocab[k - a * PAIR]}`);
    }
    const added: HfTokenizerJson["added_tokens"] = [];
    this.vocab.forEach((t, i) => {
      if (this.special[i]) {
        added.push({
          id: i,
          content: t,
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: true,
        });
      }
    });
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: { type: "NFC" },
      pre_tokenizer: { type: "Metaspace", replacement: META, prepend_scheme: "always", split: true },
      post_processor: null,
      decoder: {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: META }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          { type: "Strip", content: " ", start: 1, stop: 0 },
        ],
      },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: SPECIAL_TOKENS.unk,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: true,
        ignore_merges: false,
        vocab,
        merges,
      },
    };
  }

  /** Reads a tokenizer.json object written by PolyMoE (or following its conventions). */
  static fromJSON(json: unknown, where = "tokenizer.json"): Tokenizer {
    const j = json as Partial<HfTokenizerJson> | null;
    const model = j?.model;
    if (model?.type !== "BPE" || typeof model.vocab !== "object" || !Array.isArray(model.merges)) {
      throw new DataError(
        "BAD_TOKENIZER",
        `${where}: expected a Hugging Face tokenizer.json with a BPE model`,
      );
    }
    if (j?.pre_tokenizer?.type !== "Metaspace") {
      throw new DataError(
        "BAD_TOKENIZER",
        `${where}: pre_tokenizer is ${j?.pre_tokenizer?.type ?? "missing"}, PolyMoE tokenizers use Metaspace`,
      );
    }
    const vocab: string[] = [];
    for (const [t, id] of Object.entries(model.vocab)) {
      if (!Number.isInteger(id) || id < 0)
        throw new DataError("BAD_TOKENIZER", `${where}: vocab['${t}'] = ${id} is not an id`);
      vocab[id] = t;
    }
    for (let i = 0; i < vocab.length; i++) {
      if (vocab[i] === undefined)
        throw new DataError("BAD_TOKENIZER", `${where}: vocabulary has no token with id ${i}`);
    }
    const merges = model.merges.map((m, i) => {
      const parts: unknown = typeof m === "string" ? m.split(" ") : m;
      if (!Array.isArray(parts) || parts.length !== 2) {
        throw new DataError("BAD_TOKENIZER", `${where}: merge #${i} ${JSON.stringify(m)} is not a pair`);
      }
      return [String(parts[0]), String(parts[1])] as const;
    });
    return new Tokenizer(vocab, merges);
  }
}

/** Writes `tokenizer.json` atomically. */
export async function saveTokenizer(tok: Tokenizer, file: string): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(tok.toJSON())}\n`);
}

/** Loads a tokenizer.json. */
export async function loadTokenizer(file: string): Promise<Tokenizer> {
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch {
    throw new DataError("NOT_FOUND", `${file}: no tokenizer.json (run 'polymoe data prepare' first)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DataError("BAD_TOKENIZER", `${file}: invalid JSON (${(e as Error).message})`);
  }
  return Tokenizer.fromJSON(json, file);
}
