// Progress for long runs: one bar rewritten in place on a TTY, plain lines
// otherwise (logs, CI), in the spirit of fairseq's progress_bar.

export interface ProgressFields {
  step: number;
  total: number;
  loss: number;
  /** Training throughput (time spent evaluating and saving excluded). */
  tokensPerSecond: number;
  droppedPercent: number;
  lr: number;
  /** Wall time of this session so far (evaluation and saving included). */
  seconds: number;
  /** Steps taken in this session (the run may have resumed at a later step). */
  stepsDone: number;
}

function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m > 0
      ? `${m}m${String(sec).padStart(2, "0")}s`
      : `${sec}s`;
}

const kilo = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0));

export class Progress {
  private lastLen = 0;
  private lastPlain = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stdout,
    private readonly tty = Boolean(process.stdout.isTTY) && !process.env.CI,
    /** Without a TTY, at most one line per this many seconds (and the last step's). */
    private readonly plainEverySeconds = 5,
  ) {}

  update(f: ProgressFields): void {
    const frac = Math.min(1, f.step / f.total);
    const eta = f.stepsDone > 0 ? (f.seconds / f.stepsDone) * (f.total - f.step) : Number.NaN;
    const stats =
      `loss ${f.loss.toFixed(3)} | ${kilo(f.tokensPerSecond)} tok/s | dropped ${f.droppedPercent.toFixed(1)}% | ` +
      `lr ${f.lr.toExponential(2)} | ETA ${duration(eta)}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round(frac * width);
      const bar = `${"=".repeat(Math.max(0, filled - 1))}${filled > 0 ? ">" : ""}${" ".repeat(width - filled)}`;
      const line = `step ${f.step}/${f.total} [${bar}] ${stats}`;
      this.out.write(`\r${line}${" ".repeat(Math.max(0, this.lastLen - line.length))}`);
      this.lastLen = line.length;
    } else if (f.seconds - this.lastPlain >= this.plainEverySeconds || f.step >= f.total) {
      this.lastPlain = f.seconds;
      this.out.write(`step ${f.step}/${f.total} ${stats}\n`);
    }
  }

  /** A message on its own line (the bar is redrawn at the next update). */
  line(message: string): void {
    if (this.tty && this.lastLen > 0) {
      this.out.write(`\r${" ".repeat(this.lastLen)}\r`);
      this.lastLen = 0;
    }
    this.out.write(`${message}\n`);
  }

  done(): void {
    if (this.tty && this.lastLen > 0) this.out.write("\n");
    this.lastLen = 0;
  }
}
