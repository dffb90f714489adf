// Flag parsing shared by every command: node:util parseArgs in strict mode, so an unknown or
// malformed flag is a usage error (exit 2) that says which flag.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors/etl-error.ts';
import { nonRegularKind } from '../staging/atomic-file.ts';

type Options = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string; default?: string | boolean }>;

/** A command's flags (no positional argument). */
export function parseFlags<T extends Options>(argv: readonly string[], options: T) {
  return parseCommandLine(argv, options, { positionals: false }).values;
}

/** A command's flags and, when it takes any, positional arguments; `hint` says where to read its usage. */
export function parseCommandLine<T extends Options>(argv: readonly string[], options: T, o: { readonly positionals: boolean; readonly hint?: string }) {
  const hint = o.hint ?? 'see --help';
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: o.positionals, tokens: true });
  } catch (cause) {
    throw new UsageError('bad_arguments', (cause as Error).message, { cause, hint });
  }
  refuseEmpty(parsed.tokens, options, hint);
  refuseRepeated(parsed.tokens, options, hint);
  return { values: parsed.values, positionals: parsed.positionals };
}

/**
 * A flag given an empty value: no flag means "" (no run, folder, file, URL or name is empty), and
 * taken as given it would quietly become the default (`--run "$RUN"` with RUN unset loads latest,
 * `--staging ''` stages into the current folder). Refused, naming the flag.
 */
function refuseEmpty(tokens: readonly { kind: string; name?: string; value?: string | undefined }[], options: Options, hint: string): void {
  const empty = tokens.find((t) => t.kind === 'option' && t.name !== undefined && options[t.name]?.type === 'string' && t.value === '');
  if (empty === undefined) return;
  throw new UsageError('bad_arguments', `--${empty.name} is empty: give it a value (or leave the flag out)`, { context: { flag: `--${empty.name}` }, hint });
}

/**
 * A flag that takes one value given twice with different values: parseArgs keeps the last and drops
 * the first without a word (`--tables users --tables events` would load events only). The values
 * are not repeated in the message: one may be a connection string with its password.
 */
function refuseRepeated(tokens: readonly { kind: string; name?: string; value?: string | undefined }[], options: Options, hint: string): void {
  const seen = new Map<string, string>();
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name === undefined || t.value === undefined || options[t.name]?.multiple) continue;
    const before = seen.get(t.name);
    if (before !== undefined && before !== t.value) {
      throw new UsageError('bad_arguments', `--${t.name} is given twice, with different values: only one would be used`, {
        hint: t.name === 'tables' ? 'give the tables in one comma-separated list: --tables a,b' : `give --${t.name} once (${hint})`,
      });
    }
    seen.set(t.name, t.value);
  }
}

/**
 * `--out FILE` as an absolute path, or null when not given. An existing folder is refused now: the
 * file would otherwise be written in full beside it (FILE.partial) and fail at its rename.
 */
export function outputFile(cwd: string, out: string | undefined, example: string): string | null {
  if (out === undefined) return null;
  const file = path.resolve(cwd, out);
  const kind = nonRegularKind(file);
  // Said before any work, as a usage error of the flag (the writer itself refuses it too, later).
  if (kind !== null && kind !== 'a folder') {
    throw new UsageError('bad_arguments', `--out ${out} is not a regular file (${kind}): it would be replaced by the file written`, {
      hint: `name a file to write, e.g. --out ${example}`,
      context: { flag: '--out' },
    });
  }
  if (kind === 'a folder') {
    throw new UsageError('bad_arguments', `--out ${out} is a folder: --out names the file to write`, {
      hint: `name the file, e.g. --out ${path.join(out, example)}`,
      context: { flag: '--out' },
    });
  }
  return file;
}
