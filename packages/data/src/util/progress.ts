/**
 * Progress for long work: a redrawn bar with rate and ETA on a TTY, plain lines
 * (at most one every `plainEverySec`) otherwise. A `Progress` never throws.
 */
export interface ProgressSink {
  /** Starts a task with a total (or undefined when unknown). */
  start(label: string, total?: number, unit?: string): ProgressTask;
  /** One informational line (never interleaved mid-bar). */
  log(line: string): void;
}

export interface ProgressTask {
  tick(n?: number, detail?: string): void;
  done(detail?: string): void;
}

const fmt = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : `${Math.round(n)}`;

function eta(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "?";
  const s = Math.round(sec);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

/** A sink writing to a stream (stderr by default); bar when the stream is a TTY. */
export function consoleProgress(
  stream: NodeJS.WriteStream = process.stderr,
  plainEverySec = 5,
): ProgressSink {
  const tty = Boolean(stream.isTTY);
  let barOpen = false;
  const clear = () => {
    if (barOpen) {
      stream.write("\r\x1b[2K");
      barOpen = false;
    }
  };
  return {
    log(line) {
      clear();
      stream.write(`${line}\n`);
    },
    start(label, total, unit = "") {
      const t0 = performance.now();
      let done = 0;
      let lastDraw = 0;
      const draw = (detail: string, final: boolean) => {
        const now = performance.now();
        const sec = (now - t0) / 1000;
        const rate = done / Math.max(sec, 1e-9);
        if (tty) {
          if (!final && now - lastDraw < 100) return;
          lastDraw = now;
          const frac = total ? Math.min(1, done / total) : 0;
          const width = 24;
          const bar = total ? "█".repeat(Math.round(frac * width)).padEnd(width, "░") : "";
          const counts = total ? `${fmt(done)}/${fmt(total)}` : fmt(done);
          const tail = final
            ? `${sec.toFixed(1)}s`
            : `${fmt(rate)}${unit}/s ETA ${total ? eta((total - done) / rate) : "?"}`;
          stream.write(`\r\x1b[2K${label} ${bar} ${counts}${unit ? ` ${unit}` : ""} ${tail} ${detail}`);
          barOpen = !final;
          if (final) stream.write("\n");
        } else {
          if (!final && now - lastDraw < plainEverySec * 1000) return;
          lastDraw = now;
          const counts = total ? `${fmt(done)}/${fmt(total)}` : fmt(done);
          stream.write(
            `${label}: ${counts}${unit ? ` ${unit}` : ""} (${fmt(rate)}${unit}/s${final ? `, ${sec.toFixed(1)}s` : total ? `, ETA ${eta((total - done) / rate)}` : ""}) ${detail}\n`,
          );
        }
      };
      return {
        tick(n = 1, detail = "") {
          done += n;
          draw(detail, false);
        },
        done(detail = "") {
          draw(detail, true);
        },
      };
    },
  };
}

/** A sink that drops everything (tests, library use). */
export const silentProgress: ProgressSink = {
  log() {},
  start() {
    return { tick() {}, done() {} };
  },
};
