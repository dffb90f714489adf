// `etl schema`: creates what is missing, in load order (a table after the tables it references),
// in one transaction, so a failure leaves the database as it was. An existing table is reported,
// never altered: differences are drift's business (schema/drift.ts), and a person applies the fix.
import type pg from 'pg';
import type { PipelineModel } from '../model/types.ts';
import { LoadError } from '../model/errors.ts';
import { createTableSql } from './ddl.ts';
import { existingTables } from './catalog.ts';
import { stateTables } from './state-tables.ts';

export interface SchemaReport {
  /** Tables created by this call, in creation order (data tables in load order, then state tables). */
  readonly created: readonly string[];
  /** Tables that already existed and were left as they are. */
  readonly existing: readonly string[];
  /** The statements run, in order. */
  readonly statements: readonly string[];
}

/** Every CREATE statement for the model, in load order, then the state tables: what --dry-run prints. */
export function schemaSql(model: PipelineModel): { table: string; sql: string }[] {
  return [
    ...model.loadOrder.map((name) => ({ table: name, sql: createTableSql(model.tables.get(name)!) })),
    ...stateTables(model),
  ];
}

export async function applySchema(client: pg.Client, model: PipelineModel): Promise<SchemaReport> {
  const wanted = schemaSql(model);
  const created: string[] = [];
  const existing: string[] = [];
  const statements: string[] = [];
  await client.query('BEGIN');
  try {
    // Two `etl schema` at once would otherwise race between the check and the CREATE.
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('etl schema'))`);
    const present = await existingTables(
      client,
      wanted.map((w) => w.table),
    );
    for (const { table, sql } of wanted) {
      if (present.has(table)) {
        existing.push(table);
        continue;
      }
      try {
        await client.query(sql);
      } catch (cause) {
        const e = cause as { message?: string; code?: string };
        throw new LoadError('schema_create_failed', `cannot create table "${table}": ${e.message ?? String(cause)}`, {
          cause,
          context: { table },
          hint: 'run `etl schema --check` to compare the database with pipeline.yaml',
        });
      }
      created.push(table);
      statements.push(sql);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
  return { created, existing, statements };
}
