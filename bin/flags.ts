// Flag parsing shared by every command: node:util parseArgs in strict mode, so an unknown or
// malformed flag is a usage error (exit 2) that says which flag.
import { parseArgs } from 'node:util';
import { UsageError } from '../errors/etl-error.ts';

export function parseFlags<T extends Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>>(
  argv: readonly string[],
  options: T,
) {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (cause) {
    throw new UsageError('bad_arguments', (cause as Error).message, { cause, hint: 'see --help' });
  }
}
