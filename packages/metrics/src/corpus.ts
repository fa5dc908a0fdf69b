import { MetricsError } from "./errors.js";

/**
 * References as sacreBLEU takes them: one or more reference *streams*, each holding
 * one line per hypothesis (`references[k][i]` is the k-th reference of segment i).
 * A `null` line means "this segment has no k-th reference" (a variable number of
 * references); an empty string is a real, empty reference.
 */
export type ReferenceStreams = readonly (readonly (string | null)[])[];

/** The number of references per segment as signatures print it: a count, or `var` when it varies. */
export type ReferenceCount = number | "var";

/** Per-segment reference lists (nulls dropped), checked against the hypotheses. */
export interface AlignedCorpus {
  hypotheses: readonly string[];
  /** `<string>[segments][refs of that segment]` */
  referencesBySegment: string[][];
  nrefs: ReferenceCount;
}

/** Validates a corpus and transposes reference streams into per-segment lists. */
export function alignCorpus(hypotheses: readonly string[], references: ReferenceStreams): AlignedCorpus {
  if (!Array.isArray(hypotheses)) {
    throw new MetricsError(
      "INVALID_INPUT",
      `hypotheses must be an array of strings; got ${typeof hypotheses}`,
    );
  }
  if (hypotheses.length === 0) {
    throw new MetricsError("EMPTY_CORPUS", "no hypotheses: a corpus score needs at least one segment");
  }
  hypotheses.forEach((h, i) => {
    if (typeof h !== "string") {
      throw new MetricsError("INVALID_INPUT", `hypotheses[${i}] must be a string; got ${describe(h)}`);
    }
  });
  if (!Array.isArray(references) || references.length === 0) {
    throw new MetricsError(
      "NO_REFERENCES",
      "references must be a non-empty array of reference streams (string[][], one line per hypothesis in each); " +
        `got ${Array.isArray(references) ? "[]" : describe(references)}`,
    );
  }
  references.forEach((stream, k) => {
    if (!Array.isArray(stream)) {
      throw new MetricsError(
        "INVALID_INPUT",
        `references[${k}] must be an array of strings (one reference stream); got ${describe(stream)}. ` +
          "For a single reference per segment pass [refs], not refs",
      );
    }
    if (stream.length !== hypotheses.length) {
      throw new MetricsError(
        "LENGTH_MISMATCH",
        `reference stream ${k} has ${stream.length} lines but there are ${hypotheses.length} hypotheses; ` +
          "each stream needs exactly one line per hypothesis (null where a segment lacks that reference)",
      );
    }
  });
  const counts = new Set<number>();
  const referencesBySegment = hypotheses.map((_, i) => {
    const refs: string[] = [];
    for (let k = 0; k < references.length; k++) {
      const r = references[k]![i];
      if (r === null) continue;
      if (typeof r !== "string") {
        throw new MetricsError(
          "INVALID_INPUT",
          `references[${k}][${i}] must be a string or null; got ${describe(r)}`,
        );
      }
      refs.push(r);
    }
    if (refs.length === 0) {
      throw new MetricsError(
        "NO_REFERENCES",
        `segment ${i} has no reference (every stream holds null there)`,
      );
    }
    counts.add(refs.length);
    return refs;
  });
  const nrefs: ReferenceCount = counts.size === 1 ? [...counts][0]! : "var";
  return { hypotheses, referencesBySegment, nrefs };
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string" ? `the string '${value}'` : typeof value;
}
