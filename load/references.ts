// Missing references: a staged value pointing at a row that does not exist (a message whose sender
// was deleted in the app). Checked set-wise against the referenced table as it is now, inside the
// transaction, after the tables loaded before this one were merged. Never fatal, never silent:
//   reject   (default) the row is removed from the batch and listed in load/<table>.rejects.ndjson;
//   set_null the value becomes NULL, counted as `nulled`, and listed in the same file.
// A link row is refused alone: its parent and its siblings still load.
// Every rejecting column is checked before any set_null one, so a row that is refused anyway is not
// also counted as nulled; a row refused on two columns is listed once, for the first of them.
import type pg from 'pg';
import { ident } from '../schema/sql.ts';
import type { TableModel } from '../model/types.ts';
import {
  deleteRejectedRowsSql,
  nullMissingReferencesSql,
  recordMissingReferencesSql,
  type MergeShape,
  type ReferenceCheck,
} from './merge-sql.ts';
import type { SqlIdent } from '../schema/sql.ts';

export interface PlannedCheck extends ReferenceCheck {
  readonly action: 'reject' | 'set_null';
  /** `users(id)`, for the rejects file. */
  readonly references: string;
}

export function referenceChecks(table: TableModel, shape: MergeShape): PlannedCheck[] {
  const checks: PlannedCheck[] = [];
  for (const column of table.stagedColumns) {
    const fk = column.foreignKey;
    if (!fk) continue;
    const shaped = shape.columns.find((c) => c.name === column.name)!;
    // set_null is only possible where NULL is allowed; the model refuses it elsewhere, this is a guard.
    const action = fk.onMissing === 'set_null' && column.nullable ? 'set_null' : 'reject';
    checks.push({
      column: shaped,
      refTable: ident(fk.table),
      refColumn: ident(fk.column),
      selfReference: fk.table === table.name,
      action,
      references: `${fk.table}(${fk.column})`,
    });
  }
  // Rejections first (see above); within each group, column order.
  return [...checks.filter((c) => c.action === 'reject'), ...checks.filter((c) => c.action === 'set_null')];
}

export interface ReferenceOutcome {
  readonly rejected: number;
  readonly nulled: number;
}

export async function resolveMissingReferences(client: pg.Client, shape: MergeShape, rejects: SqlIdent, checks: readonly PlannedCheck[]): Promise<ReferenceOutcome> {
  let rejected = 0;
  let nulled = 0;
  for (const check of checks) {
    const record = recordMissingReferencesSql(shape, rejects, check, check.action);
    const found = (await client.query(record.sql, [...record.parameters])).rowCount ?? 0;
    if (found === 0) continue;
    if (check.action === 'reject') {
      const del = deleteRejectedRowsSql(shape, rejects, check);
      rejected += (await client.query(del.sql, [...del.parameters])).rowCount ?? 0;
    } else {
      const upd = nullMissingReferencesSql(shape, rejects, check);
      nulled += (await client.query(upd.sql, [...upd.parameters])).rowCount ?? 0;
    }
  }
  return { rejected, nulled };
}
