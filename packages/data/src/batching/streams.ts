// Task space and example streams.
//
// Task ids (integers, usable as indices of a task-level router):
//   targetLangId  index into `languages` (English = 0) of the language the decoder writes
//   pairId        index into `pairs`: for each target xx, "en-xx" then "xx-en"; then the
//                 denoising "pairs" "en-en", "xx-xx" for every language
//   taskTypeId    index into `taskTypes`: 0 = translate, 1 = denoise
//
// A stream is one (task, direction) over one language's data: translate en→xx,
// translate xx→en, denoise xx, denoise en (unique English sentences of all pairs).
// A translation direction with directed pairs (TrainingData.directed) reads those;
// denoising always reads the symmetric pairs.
import type { TrainingData } from "../corpus/open.js";
import type { PairTokens } from "../corpus/tokens_file.js";
import { DataError } from "../errors.js";
import { hash53 } from "../util/hash.js";

export const TASK_TYPES = ["translate", "denoise"] as const;
export type TaskType = (typeof TASK_TYPES)[number];

/** The integer ids examples carry, and their names. */
export interface TaskSpace {
  /** `[numLanguages]`: English first. targetLangId indexes this. */
  languages: readonly string[];
  /** `[numPairs]`: "en-xx", "xx-en" per target, then "en-en" and "xx-xx" (denoising). pairId indexes this. */
  pairs: readonly string[];
  /** `[2]`: taskTypeId indexes this. */
  taskTypes: readonly TaskType[];
}

/** The task space of a language list (English first). Pure. */
export function taskSpaceOf(languages: readonly string[]): TaskSpace {
  if (languages[0] !== "en") {
    throw new DataError("INVALID_ARGUMENT", `languages must start with 'en', got [${languages.join(", ")}]`);
  }
  const targets = languages.slice(1);
  const pairs: string[] = [];
  for (const l of targets) pairs.push(`en-${l}`, `${l}-en`);
  for (const l of languages) pairs.push(`${l}-${l}`);
  return { languages: [...languages], pairs, taskTypes: [...TASK_TYPES] };
}

/** Which side of a language's pair data a stream reads. */
export interface Stream {
  /** Index in the stream list. */
  id: number;
  task: TaskType;
  srcLang: string;
  tgtLang: string;
  pairId: number;
  targetLangId: number;
  taskTypeId: number;
  /** Number of distinct examples. */
  size: number;
  /** Source ids of example i (before tags/noise): `<int>[tokens]`. */
  source(i: number): ArrayLike<number>;
  /** Target ids of example i: `<int>[tokens]`. */
  target(i: number): ArrayLike<number>;
}

/** Builds every stream of the training data (translation both ways; denoising per language incl. English). */
export function buildStreams(data: TrainingData, space: TaskSpace): Stream[] {
  const streams: Stream[] = [];
  const langId = (l: string) => space.languages.indexOf(l);
  const pairId = (p: string) => space.pairs.indexOf(p);
  const slice = (
    ids: ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> },
    off: Uint32Array,
    i: number,
  ) => ids.subarray(off[i]!, off[i + 1]!);
  for (const lang of space.languages.slice(1)) {
    const p = data.pairs.get(lang);
    if (!p) throw new DataError("BAD_CORPUS", `training data has no pairs for '${lang}'`);
    // A direction with its own pairs (e.g. a teacher's outputs) reads those instead.
    const fwd = data.directed?.get(`en-${lang}`) ?? p;
    const bwd = data.directed?.get(`${lang}-en`) ?? p;
    const en = (q: PairTokens) => (i: number) => slice(q.enIds, q.enOffsets, i);
    const xx = (q: PairTokens) => (i: number) => slice(q.xxIds, q.xxOffsets, i);
    streams.push(
      mk(
        streams.length,
        "translate",
        "en",
        lang,
        pairId(`en-${lang}`),
        langId(lang),
        fwd.n,
        en(fwd),
        xx(fwd),
      ),
      mk(streams.length + 1, "translate", lang, "en", pairId(`${lang}-en`), 0, bwd.n, xx(bwd), en(bwd)),
    );
  }
  // Denoising English: unique English token sequences across every pair set.
  const refs: Array<[string, number]> = [];
  const seen = new Set<number>();
  for (const lang of space.languages.slice(1)) {
    const p = data.pairs.get(lang)!;
    for (let i = 0; i < p.n; i++) {
      const ids = slice(p.enIds, p.enOffsets, i);
      let s = "";
      for (let k = 0; k < ids.length; k++) s += String.fromCharCode(ids[k]! & 0xffff, ids[k]! >>> 16);
      const h = hash53(s);
      if (seen.has(h)) continue;
      seen.add(h);
      refs.push([lang, i]);
    }
  }
  const enMono = (i: number) => {
    const [lang, k] = refs[i]!;
    const p = data.pairs.get(lang)!;
    return slice(p.enIds, p.enOffsets, k);
  };
  streams.push(mk(streams.length, "denoise", "en", "en", pairId("en-en"), 0, refs.length, enMono, enMono));
  for (const lang of space.languages.slice(1)) {
    const p = data.pairs.get(lang)!;
    const xx = (i: number) => slice(p.xxIds, p.xxOffsets, i);
    streams.push(
      mk(streams.length, "denoise", lang, lang, pairId(`${lang}-${lang}`), langId(lang), p.n, xx, xx),
    );
  }
  return streams;
}

function mk(
  id: number,
  task: TaskType,
  srcLang: string,
  tgtLang: string,
  pairId: number,
  targetLangId: number,
  size: number,
  source: (i: number) => ArrayLike<number>,
  target: (i: number) => ArrayLike<number>,
): Stream {
  return {
    id,
    task,
    srcLang,
    tgtLang,
    pairId,
    targetLangId,
    taskTypeId: TASK_TYPES.indexOf(task),
    size,
    source,
    target,
  };
}
