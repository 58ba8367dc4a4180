import { styleText } from 'node:util';

/*
 * Where the CLI writes, and how it colours: colour only when the stream
 * is a terminal and NO_COLOR is not set (FORCE_COLOR forces it), so
 * captured output and golden files are plain text.
 */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readonly color: boolean;
  /** progress bars and spinners go to stderr, only on a terminal */
  readonly progress: boolean;
}

type Style = Parameters<typeof styleText>[0];

export function processIo(): CliIo {
  const env = process.env;
  const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0';
  const color =
    forced || (process.stdout.isTTY === true && env.NO_COLOR === undefined && env.TERM !== 'dumb');
  return {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    color,
    progress: process.stderr.isTTY === true && env.CI === undefined,
  };
}

/** an io that collects lines (tests, and commands that post-process output) */
export function memoryIo(): CliIo & { readonly stdout: string[]; readonly stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (t) => stdout.push(t),
    err: (t) => stderr.push(t),
    color: false,
    progress: false,
  };
}

export class Painter {
  constructor(readonly on: boolean) {}
  paint(style: Style, text: string): string {
    return this.on ? styleText(style, text) : text;
  }
  bold(t: string): string {
    return this.paint('bold', t);
  }
  dim(t: string): string {
    return this.paint('dim', t);
  }
  ok(t: string): string {
    return this.paint('green', t);
  }
  bad(t: string): string {
    return this.paint('red', t);
  }
  warn(t: string): string {
    return this.paint('yellow', t);
  }
  fn(t: string): string {
    return this.paint('cyan', t);
  }
}

/** exit statuses: 0 done, 1 the run failed, 2 the command line or an input file was wrong */
export const EXIT_OK = 0;
export const EXIT_FAIL = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {
  override name = 'UsageError';
}
