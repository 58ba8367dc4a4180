import { Presets, SingleBar } from 'cli-progress';

/*
 * A progress bar for long benchmark loops: on stderr, only when stderr is
 * a terminal (never in CI logs or captured output), cleared when done so
 * the figures on stdout stay clean.
 */
export interface Progress {
  tick(n?: number): void;
  done(): void;
}

export function progress(total: number, label: string): Progress {
  if (!process.stderr.isTTY || process.env.CI !== undefined || total <= 0)
    return { tick: () => {}, done: () => {} };
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {value}/{total}`,
      stream: process.stderr,
      clearOnComplete: true,
      hideCursor: true,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  let v = 0;
  return {
    tick: (n = 1) => {
      v += n;
      bar.update(v);
    },
    done: () => bar.stop(),
  };
}
