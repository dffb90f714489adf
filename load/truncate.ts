// force_reimport + truncate_before_import: TRUNCATE … CASCADE before the table is loaded again,
// naming every table the cascade empties (found first in the catalogs, as TRUNCATE resolves them).
import { compiled, type CompiledQuery } from '../schema/sql.ts';
import type { LoadContext } from './load-context.ts';
import type { TableShape } from './shape.ts';

/** The table and every table that references it, recursively: what TRUNCATE … CASCADE empties. */
function cascadeTargetsSql(s: TableShape): CompiledQuery {
  return compiled(
    `WITH RECURSIVE dep(oid, depth) AS (` +
      `SELECT $1::regclass::oid, 0 ` +
      `UNION SELECT c.conrelid, dep.depth + 1 FROM pg_constraint c JOIN dep ON c.confrelid = dep.oid ` +
      `WHERE c.contype = 'f' AND dep.depth < 100` +
      `) SELECT cl.relname AS name, min(dep.depth) AS depth FROM dep JOIN pg_class cl ON cl.oid = dep.oid ` +
      `GROUP BY cl.relname ORDER BY min(dep.depth), cl.relname`,
    [s.target],
  );
}

/** Empties the table and those referencing it; returns their names (the table first). */
export async function truncateCascade(ctx: LoadContext, shape: TableShape, onStart: () => void): Promise<string[]> {
  onStart();
  const found = await ctx.session.run(cascadeTargetsSql(shape));
  await ctx.session.run(compiled(`TRUNCATE TABLE ${shape.target} CASCADE`));
  return (found.rows as { name: string }[]).map((r) => r.name);
}
