// Terminal output conventions: colour only when wanted (NO_COLOR, FORCE_COLOR, a TTY). Results and
// --json go to stdout; progress and errors to stderr (bin/progress/, bin/render-error.ts).
import type { Writable } from 'node:stream';

type Env = Readonly<Record<string, string | undefined>>;

export function colorEnabled(stream: { isTTY?: boolean }, env: Env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true;
}

export function paint(stream: { isTTY?: boolean }, env: Env) {
  const on = colorEnabled(stream, env);
  const wrap = (open: number, close: number) => (s: string) => (on ? `\u001b[${open}m${s}\u001b[${close}m` : s);
  return { red: wrap(31, 39), green: wrap(32, 39), yellow: wrap(33, 39), dim: wrap(2, 22), bold: wrap(1, 22) };
}

export function writeJson(out: Writable, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}
