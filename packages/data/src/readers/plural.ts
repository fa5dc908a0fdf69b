// gettext Plural-Forms: a safe evaluator for the C expression subset gettext allows
// (n, integers, ?:, ||, &&, == != < > <= >=, + - * / %, !, unary -, parentheses).
// No eval: the expression is parsed once into a closure.

export interface PluralForms {
  /** Number of plural forms (msgstr[0..nplurals-1]). */
  nplurals: number;
  /** Index of the form used for a count `n`. */
  index: (n: number) => number;
  /** The expression as written. */
  expression: string;
}

type Fn = (n: number) => number;

/**
 * Parses a `Plural-Forms` header value (`nplurals=3; plural=(n%10==1 ? 0 : ...);`).
 * Throws an Error with a message naming the offending position; callers add the file.
 */
export function parsePluralForms(header: string): PluralForms {
  const np = /nplurals\s*=\s*(\d+)/.exec(header);
  const pl = /plural\s*=\s*([^;]+);?/.exec(header);
  if (!np) throw new Error(`Plural-Forms '${header}' has no nplurals=N`);
  const nplurals = Number(np[1]);
  if (nplurals < 1 || nplurals > 16) throw new Error(`Plural-Forms nplurals=${nplurals} is outside 1..16`);
  const expression = (pl?.[1] ?? "0").trim();
  const fn = compilePlural(expression);
  return {
    nplurals,
    expression,
    index: (n) => {
      const v = fn(n);
      return v >= 0 && v < nplurals ? v : 0;
    },
  };
}

/** Compiles a gettext plural expression into `(n) => formIndex`. */
export function compilePlural(src: string): Fn {
  const toks = src.match(/\d+|n|\|\||&&|==|!=|<=|>=|[-+*/%<>!?:()]|\S/g) ?? [];
  let i = 0;
  const peek = () => toks[i];
  const eat = (t?: string) => {
    const tok = toks[i];
    if (t !== undefined && tok !== t)
      throw new Error(`plural expression '${src}': expected '${t}' at token ${i}, got '${tok ?? "end"}'`);
    i++;
    return tok!;
  };
  const bin = (ops: Record<string, (a: number, b: number) => number>, next: () => Fn) => () => {
    let left = next();
    while (peek() !== undefined && ops[peek()!]) {
      const op = ops[eat()]!;
      const right = next();
      const l = left;
      left = (n) => op(l(n), right(n));
    }
    return left;
  };
  const b = (x: boolean) => (x ? 1 : 0);
  const primary = (): Fn => {
    const t = peek();
    if (t === "(") {
      eat("(");
      const e = ternary();
      eat(")");
      return e;
    }
    if (t === "!") {
      eat();
      const e = primary();
      return (n) => b(!e(n));
    }
    if (t === "-") {
      eat();
      const e = primary();
      return (n) => -e(n);
    }
    if (t === "n") {
      eat();
      return (n) => n;
    }
    if (t !== undefined && /^\d+$/.test(t)) {
      eat();
      const v = Number(t);
      return () => v;
    }
    throw new Error(`plural expression '${src}': unexpected '${t ?? "end"}' at token ${i}`);
  };
  const mul = bin(
    {
      "*": (a, c) => a * c,
      "/": (a, c) => (c === 0 ? 0 : Math.trunc(a / c)),
      "%": (a, c) => (c === 0 ? 0 : a % c),
    },
    primary,
  );
  const add = bin({ "+": (a, c) => a + c, "-": (a, c) => a - c }, mul);
  const rel = bin(
    {
      "<": (a, c) => b(a < c),
      ">": (a, c) => b(a > c),
      "<=": (a, c) => b(a <= c),
      ">=": (a, c) => b(a >= c),
    },
    add,
  );
  const eq = bin({ "==": (a, c) => b(a === c), "!=": (a, c) => b(a !== c) }, rel);
  const and = bin({ "&&": (a, c) => b(a !== 0 && c !== 0) }, eq);
  const or = bin({ "||": (a, c) => b(a !== 0 || c !== 0) }, and);
  function ternary(): Fn {
    const cond = or();
    if (peek() === "?") {
      eat("?");
      const yes = ternary();
      eat(":");
      const no = ternary();
      return (n) => (cond(n) !== 0 ? yes(n) : no(n));
    }
    return cond;
  }
  const fn = ternary();
  if (i !== toks.length) throw new Error(`plural expression '${src}': unexpected '${toks[i]}' at token ${i}`);
  return fn;
}
