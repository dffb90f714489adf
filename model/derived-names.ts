// The names etl derives from pipeline.yaml's tables and columns: constraint names, the dedupe state
// table etl_contrib_<table> and its index. Here, in the model, so that `etl validate` can refuse two
// things PostgreSQL would hold under one name; schema/ builds its DDL with the same functions.
import { createHash } from 'node:crypto';
import { MAX_IDENTIFIER_BYTES } from './resolve-util.ts';

/**
 * A name etl derives (`<table>_pkey`, `etl_contrib_<table>`, `<table>_<column>_seq`): `full` when it
 * fits PostgreSQL's 63 bytes (longer ones it truncates silently, so two could become one), else as
 * much of it as fits, a hash of the whole, then `suffix`. The cut is between characters, never inside
 * a UTF-16 pair: half of one reaches PostgreSQL as U+FFFD, a name etl would never find again.
 */
export function fittedName(full: string, suffix = ''): string {
  if (Buffer.byteLength(full) <= MAX_IDENTIFIER_BYTES) return full;
  const tail = `_${createHash('sha256').update(full).digest('hex').slice(0, 8)}${suffix}`;
  const head = Array.from(full);
  while (Buffer.byteLength(head.join('')) + Buffer.byteLength(tail) > MAX_IDENTIFIER_BYTES) head.pop();
  return `${head.join('')}${tail}`;
}

/**
 * `<table>_<columns>_<suffix>` (PostgreSQL's own pattern: users_pkey, events_company_id_fkey),
 * shortened with a hash when over 63 bytes so it stays unique.
 */
export function constraintName(table: string, columns: readonly string[], suffix: 'pkey' | 'key' | 'fkey'): string {
  return fittedName(suffix === 'pkey' ? `${table}_pkey` : `${table}_${columns.join('_')}_${suffix}`, `_${suffix}`);
}

/** `etl_contrib_<table>`: the contributions state table of a dedupe table. */
export const contributionsTableName = (table: string): string => fittedName(`etl_contrib_${table}`);

/** The index of a contributions table on the dedupe key. */
export const contributionsIndexName = (table: string): string => fittedName(`${contributionsTableName(table)}_key`);
