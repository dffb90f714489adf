// Whether this session owns a table (is its owner or a member of the owning role): only an owner
// may drop and re-create its indexes and constraints, CLUSTER or TRUNCATE it. One spelling of the
// test for every statement that asks.
import { compiled, type SqlIdent } from '../schema/sql.ts';
import type { LoadSession } from './session.ts';

/** SQL true when the session owns the relation whose oid `oid` (an SQL expression) is. */
export const ownsRelationSql = (oid: string): string => `pg_has_role((SELECT o.relowner FROM pg_class AS o WHERE o.oid = ${oid}), 'USAGE')`;

export async function ownsTable(session: LoadSession, table: SqlIdent): Promise<boolean> {
  const r = await session.run(compiled(`SELECT ${ownsRelationSql('$1::regclass')} AS owned`, [table]));
  return (r.rows[0] as { owned: boolean }).owned;
}
