// Tables etl loaded that pipeline.yaml no longer has ("retired"): their rows stay as they are (a
// person decides whether to drop them), but etl stops maintaining them. Two things would otherwise go
// wrong: their foreign keys, still in PostgreSQL, make every later load that deletes a row they
// reference fail at its commit (a deleted user, a menu that left its filter); and their state
// (watermark and fingerprint, pending rows, claims) would make the table, if it comes back, resume
// incrementally from a watermark its rows were never kept up to. So `etl schema` drops the foreign
// keys etl named (lossless: no row is lost), forgets its pending rows and claims, and marks its
// stored mapping fingerprint `retired`: a table that comes back has a changed mapping, so its first
// run reads it in full and replaces its rows (and keys its old rows break wait for that run).
import type { PipelineModel } from '../model/types.ts';
import { existingTables, existingTablesWithColumn, readTables } from './catalog.ts';
import { constraintName, dropConstraintSql } from './ddl.ts';
import { compiled, ident, literal, runSql, type Queryable } from './sql.ts';
import { CLAIMS_TABLE, GONE_TABLE, PENDING_TABLE, WATERMARKS_TABLE } from './state-tables.ts';
import type { SchemaChange } from './changes.ts';

const lossless = { allow: null, risk: null, deletesRows: 0, neededByLoad: false } as const;

/**
 * Tables with a watermark (etl loaded them and has not forgotten them), sorted, each with the mapping
 * fingerprint stored with it (null: none, or a database whose etl_watermarks has no such column yet).
 */
export async function loadedTables(client: Queryable): Promise<Map<string, string | null>> {
  const has = (await existingTablesWithColumn(client, [WATERMARKS_TABLE], 'fingerprint')).get(WATERMARKS_TABLE);
  if (has === undefined) return new Map();
  const r = await runSql<{ name: string; fingerprint: string | null }>(
    client,
    compiled(`SELECT table_name AS name, ${has ? 'fingerprint' : 'NULL::text'} AS fingerprint FROM ${ident(WATERMARKS_TABLE)} ORDER BY 1`),
  );
  return new Map(r.rows.map((row) => [row.name, row.fingerprint]));
}

/** The fingerprint a retired table's watermark holds: no mapping gives it. */
export const RETIRED = 'retired';

/** Tables etl loaded that pipeline.yaml does not declare and that are not retired yet, sorted. */
async function retiredTables(client: Queryable, model: PipelineModel): Promise<string[]> {
  const declared = new Set(model.loadOrder);
  return [...(await loadedTables(client))].filter(([name, fingerprint]) => !declared.has(name) && fingerprint !== RETIRED).map(([name]) => name);
}

/** The state tables keeping entries per table, forgotten with a retired table. */
const FORGOTTEN_STATE = [PENDING_TABLE, CLAIMS_TABLE, GONE_TABLE];

/** The changes that retire each table pipeline.yaml dropped: its own foreign keys dropped, its state forgotten. */
export async function retiredTableChanges(client: Queryable, model: PipelineModel): Promise<SchemaChange[]> {
  const names = await retiredTables(client, model);
  if (names.length === 0) return [];
  const live = await readTables(client, names);
  const state = await existingTables(client, FORGOTTEN_STATE);
  const changes: SchemaChange[] = [];
  for (const name of names) {
    for (const fk of live.get(name)?.foreignKeys ?? []) {
      if (fk.name !== constraintName(name, fk.columns, 'fkey')) continue;
      changes.push({
        ...lossless,
        kind: 'drop_constraint',
        table: name,
        column: fk.columns.length === 1 ? fk.columns[0]! : null,
        message: `table "${name}" is no longer in pipeline.yaml; its foreign key "${fk.name}" (${fk.columns.join(', ')}) → ${fk.refTable} would stop every load that deletes a row it references: dropped (no row is lost)`,
        sql: [dropConstraintSql(name, fk.name)],
      });
    }
    const forget = FORGOTTEN_STATE.filter((s) => state.has(s)).map((s) => `DELETE FROM ${ident(s)} WHERE table_name = ${literal(name)}`);
    const mark = `UPDATE ${ident(WATERMARKS_TABLE)} SET fingerprint = ${literal(RETIRED)} WHERE table_name = ${literal(name)}`;
    changes.push({
      ...lossless,
      kind: 'retire_table',
      table: name,
      column: null,
      message: `table "${name}" is no longer in pipeline.yaml: etl stops loading it (its rows stay as they are); its pending rows are forgotten and its mapping marked retired, so if it comes back its first run reads it in full`,
      sql: [...forget, mark],
    });
  }
  return changes;
}
