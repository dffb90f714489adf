import { createHash } from 'node:crypto';

/** PostgreSQL truncates identifiers at 63 bytes; MongoDB allows 63 characters for a database name. */
const MAX_NAME = 63;

/**
 * A database name derived from a test name: [a-z0-9_], starting with a letter, at most 63 characters.
 * A name that had to be shortened ends with a hash of the full text, so two long test names sharing a
 * prefix still get different databases.
 */
export function databaseNameFor(testName: string): string {
  let name = testName
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!/^[a-z]/.test(name)) name = `t_${name}`.replace(/_+$/, '');
  if (name.length > MAX_NAME) {
    const hash = createHash('sha256').update(testName).digest('hex').slice(0, 8);
    name = `${name.slice(0, MAX_NAME - hash.length - 1).replace(/_+$/, '')}_${hash}`;
  }
  return name;
}
