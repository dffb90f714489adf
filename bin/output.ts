// Terminal output conventions: colour only when wanted (NO_COLOR, FORCE_COLOR, a TTY). Results and
// --json go to stdout; progress and errors to stderr (bin/progress/, bin/render-error.ts).
import { Writable } from 'node:stream';

type Env = Readonly<Record<string, string | undefined>>;

function colorEnabled(stream: { isTTY?: boolean }, env: Env): boolean {
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

/**
 * --quiet for any command: keeps only the last line written, printed by `flush()` when the command
 * succeeded. Commands that know their final line print only that; the others need no change.
 */
export class LastLineOnly extends Writable {
  private last = '';
  private partial = '';

  constructor(private readonly target: Writable) {
    super({ decodeStrings: false });
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    const lines = (this.partial + chunk.toString()).split('\n');
    this.partial = lines.pop()!;
    for (const l of lines) if (l.trim() !== '') this.last = l;
    callback();
  }

  flush(): void {
    const line = this.partial.trim() !== '' ? this.partial : this.last;
    if (line !== '') this.target.write(`${line}\n`);
  }
}
