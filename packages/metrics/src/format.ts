/**
 * Formats `x` with `digits` decimals exactly as Python's `f"{x:.{digits}f}"` does:
 * the exact binary value rounded half to even. `Number.prototype.toFixed` rounds
 * exact ties away from zero instead (`(0.125).toFixed(2)` is "0.13", Python prints
 * "0.12"), and ties are real here: a chrF of exactly 12.25 printed with one
 * decimal is "12.2" in sacreBLEU.
 */
export function formatFixed(x: number, digits: number): string {
  if (!Number.isInteger(digits) || digits < 0 || digits > 50) {
    throw new RangeError(`digits must be an integer in [0, 50]; got ${digits}`);
  }
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  const negative = x < 0 || Object.is(x, -0);
  const magnitude = Math.abs(x);
  // Decimal expansion to 100 places. A tie at <= 50 decimals is j / 2^(digits+1)
  // with j odd, whose expansion ends within 51 places, so toFixed(100) shows it
  // exactly; a non-tie double is never within 1e-100 of one, so rounding the
  // expansion at 100 places cannot fake a tie. Doubles >= 2^53 are integers.
  const exact = magnitude >= 2 ** 53 ? `${BigInt(magnitude)}.${"0".repeat(100)}` : magnitude.toFixed(100);
  const point = exact.indexOf(".");
  const intPart = exact.slice(0, point);
  const fraction = exact.slice(point + 1);
  const kept = intPart + fraction.slice(0, digits);
  const rest = fraction.slice(digits);
  let roundUp: boolean;
  if (rest[0]! > "5") roundUp = true;
  else if (rest[0]! < "5") roundUp = false;
  else if (/[1-9]/.test(rest.slice(1))) roundUp = true;
  else roundUp = Number(kept[kept.length - 1]) % 2 === 1; // exact tie: to even
  const digitsOut = roundUp ? incrementDecimal(kept) : kept;
  const whole = digitsOut.slice(0, digitsOut.length - digits) || "0";
  const text = digits > 0 ? `${whole}.${digitsOut.slice(digitsOut.length - digits)}` : whole;
  return negative ? `-${text}` : text;
}

/** Adds one to a string of decimal digits. */
function incrementDecimal(s: string): string {
  const d = s.split("");
  let i = d.length - 1;
  while (i >= 0 && d[i] === "9") {
    d[i] = "0";
    i--;
  }
  if (i < 0) return `1${d.join("")}`;
  d[i] = String(Number(d[i]) + 1);
  return d.join("");
}

/** `formatFixed` parsed back to a number: the score as sacreBLEU's JSON reports it (`float(f"{x:.2f}")`). */
export function roundScore(x: number, digits = 2): number {
  return Number(formatFixed(x, digits));
}
