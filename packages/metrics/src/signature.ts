import pkg from "../package.json" with { type: "json" };

/**
 * The sacreBLEU release whose scores these are meant to reproduce (and that the
 * oracle comparison in the package README was run against).
 */
export const SACREBLEU_COMPAT_VERSION = "2.6.0";

/** This package's version, as signatures report it. */
export const METRICS_VERSION: string = pkg.version;

/** Signature keys, in the order sacreBLEU prints them. */
export type SignatureKey =
  | "nrefs"
  | "case"
  | "eff"
  | "tok"
  | "smooth"
  | "nc"
  | "nw"
  | "space"
  | "impl"
  | "compat";

/**
 * A reproducibility signature: the settings that determine a score, as
 * `key:value` pairs in sacreBLEU's order and spelling. In place of sacreBLEU's
 * `version:2.x.y` — which would claim that sacreBLEU computed the score — it ends
 * with `impl:polymoe-metrics-<version>` (who computed it) and
 * `compat:sacrebleu-<version>` (the sacreBLEU release it reproduces). Every other
 * field reads exactly as sacreBLEU's would for the same settings.
 */
export interface Signature {
  readonly metric: "BLEU" | "chrF";
  readonly entries: readonly (readonly [SignatureKey, string])[];
}

const SHORT: Readonly<Record<SignatureKey, string>> = {
  nrefs: "#",
  case: "c",
  eff: "e",
  tok: "tok",
  smooth: "s",
  nc: "nc",
  nw: "nw",
  space: "s",
  impl: "impl",
  compat: "compat",
};

/** `nrefs:1|case:mixed|...` (or sacreBLEU's abbreviated keys with `short`: `#:1|c:mixed|...`). */
export function formatSignature(signature: Signature, options: { short?: boolean } = {}): string {
  return signature.entries.map(([key, value]) => `${options.short ? SHORT[key] : key}:${value}`).join("|");
}

/** The trailing entries every signature carries. */
export function provenance(): (readonly [SignatureKey, string])[] {
  return [
    ["impl", `polymoe-metrics-${METRICS_VERSION}`],
    ["compat", `sacrebleu-${SACREBLEU_COMPAT_VERSION}`],
  ];
}
