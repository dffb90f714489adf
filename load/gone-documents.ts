// Documents a load found gone (etl_gone): per table, the `_id` (as its rows' key text) of each
// document whose rows or contributions this load deleted because the document was not in the
// collection's live set (delete propagation), not read by a complete read, or asked for by a repair
// and not found (a repair's keys file names those as if read: it records every document it named
// that now stages nothing, and forgets no entry).
//
// Every incremental extract asks for them again whatever their dates (extract/gone-read.ts): a
// document restored from a backup keeps its old `_id` and dates, so neither a watermark nor the
// `_id`'s minting time would ever read it again, and a full run would hold its rows. An entry goes
// when a run reads its document for the table; a document that stays gone is asked about by every
// run (an index lookup on a live server).
import { compiled, ident, type CompiledQuery } from '../schema/sql.ts';
import { GONE_TABLE } from '../schema/state-tables.ts';
import { scopeColumn } from './batch-sql.ts';
import type { TableShape } from './shape.ts';
import type { LoadSession } from './session.ts';
import type { LoadContext } from './load-context.ts';

const goneTable = ident(GONE_TABLE);

/** What a table step needs to keep etl_gone: its run, whether the table had entries before the load, whether the run is a repair. */
export interface GoneNote {
  readonly runId: string;
  readonly known: boolean;
  readonly repair: boolean;
}

/** The note of `table`'s step in this load. */
export function goneNoteOf(ctx: LoadContext, table: string): GoneNote {
  return { runId: ctx.runId, known: ctx.goneBefore.has(table), repair: ctx.repair };
}

/** The tables holding etl_gone entries (asked once, when the load starts). */
export function tablesWithGone(session: LoadSession): Promise<Set<string>> {
  return session.tablesListedIn(GONE_TABLE);
}

/** `INSERT … SELECT DISTINCT $1, <doc>::text, $2 FROM <from> WHERE …`: records documents as gone, keeping the first run that found each. */
export function recordGoneSql(from: string, doc: string, where: string): string {
  return `INSERT INTO ${goneTable} (table_name, key, run_id) SELECT DISTINCT $1, ${doc}::text, $2 FROM ${from} WHERE ${doc} IS NOT NULL AND (${where}) ON CONFLICT (table_name, key) DO NOTHING`;
}

/**
 * Forgets the entries of the documents this run read for the table: for a complete read, those
 * owning a row (`owner`, alias o: the target, or a dedupe's staged contributions; a complete read
 * copies its keys file only when claims need it); else those its keys file names. Run before anything
 * is recorded: a document read, then deleted before the listing, is gone.
 */
export function forgetReadSql(s: TableShape, scope: { readonly keys: boolean; readonly complete: boolean }, owner: { readonly from: string; readonly column: string }, note: GoneNote): CompiledQuery | null {
  // Nothing to forget; a repair names the documents it did not find as if read.
  if (!note.known || note.repair) return null;
  const base = `DELETE FROM ${goneTable} AS g WHERE g.table_name = $1 AND `;
  if (scope.complete) return compiled(`${base}EXISTS (SELECT 1 FROM ${owner.from} AS o WHERE o.${owner.column}::text = g.key)`, [s.table.name]);
  if (scope.keys) return compiled(`${base}g.key IN (SELECT k.${scopeColumn(s).id}::text FROM ${s.temps.keys} AS k)`, [s.table.name]);
  return null;
}
