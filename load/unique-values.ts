// A unique constraint beside the key a table merges on (users declaring [email] unique) is checked by
// PostgreSQL row by row, in the middle of the merge. A source holding each value once can still move
// a value from one row to another between two runs: the row that held it leaves in this run (its
// document deleted, or no longer yielding the row), or changes in this run too (two users swapped
// their emails). The merge would meet the old row first and stop, where a full run loads. So before
// the merge, a row holding a value a batch row of another key takes is taken out of the way:
//   leaving   deleted as leave.ts would delete it after the merge (counted and followed the same way);
//   orphaned  a row it references (on_missing: reject) was deleted by this load: deleted and held as
//             orphans.ts would after the merge;
//   changing  deleted, to be inserted again by the merge with its new values (the foreign keys are
//             deferred to COMMIT, so rows referencing it never see it missing). Not in a dedupe table,
//             whose rows' ids a sequence gives: there the merge meets it as before.
// A value rows of two keys or more would hold (two users with one email: the source has no unique
// index, or lost it) is no row's: every holder is refused (`duplicate_value`, naming them all) and
// waits in etl_pending until it holds the value alone, as a full run of the same documents leaves it
// (holdSharedValues). The load goes on.
import { compiled, ident, type CompiledQuery } from '../schema/sql.ts';
import { PENDING_TABLE } from '../schema/state-tables.ts';
import type { LoadContext } from './load-context.ts';
import { goneCondition, leftCondition, leftGoneIn, scopedEntries, type Scope } from './leave.ts';
import { settleOrphans } from './orphans.ts';
import { holdSharedRows, ownerNotInSql } from './pending.ts';
import { createRejectsTableSql, type PlannedCheck } from './references.ts';
import { keyJson, keyObject, list, matchKey, type OtherUnique, type TableShape } from './shape.ts';

const PENDING = ident(PENDING_TABLE);

export interface Vacated {
  /** Rows deleted now rather than after the merge: they left the scope, or their document is gone, */
  readonly left: number;
  readonly gone: number;
  /** or a row they reference (on_missing: reject) was deleted by this load (orphans.ts). */
  readonly referencing: number;
  /** Rows of the batch's keys deleted to be merged again: the merge counts them inserted, they were updated. */
  readonly replaced: number;
}

export const NOTHING_VACATED: Vacated = { left: 0, gone: 0, referencing: 0, replaced: 0 };

/** A target row (alias t) holding the values of some other unique constraint that a batch row of another key holds. */
function takenCondition(s: TableShape): string {
  return s.otherUniques
    .map(({ columns: u }) => `EXISTS (SELECT 1 FROM ${s.temps.stage} AS v WHERE (${list(u, 'v.')}) = (${list(u, 't.')}) AND NOT (${matchKey(s.key, 'v', 't')}))`)
    .join(' OR ');
}

/** Takes the rows standing in the way of the batch out of the table (its batch is final: references checked, contested keys refused). */
export async function vacateTakenValues(ctx: LoadContext, shape: TableShape, scope: Scope, checks: readonly PlannedCheck[]): Promise<Vacated> {
  if (shape.otherUniques.length === 0) return NOTHING_VACATED;
  const { session, gone: goneRows, runId } = ctx;
  session.at(shape.table.name, 'moving unique values out of the way');
  const taken = `(${takenCondition(shape)})`;
  const gone = scope.live && shape.docKey ? await goneRows.delete(shape, `${goneCondition(shape)} AND ${taken}`, runId) : 0;
  const leaving = leftCondition(shape, scope);
  const left = leaving ? await goneRows.delete(shape, `${leaving} AND ${taken}`, leftGoneIn(ctx, scope)) : 0;
  const referencing = await vacateOrphans(ctx, shape, checks, taken);
  if (shape.kind === 'dedupe_upsert') return { left, gone, referencing, replaced: 0 };
  const staged = `EXISTS (SELECT 1 FROM ${shape.temps.stage} AS s WHERE ${matchKey(shape.key, 's', 't')})`;
  const replaced = await session.count(compiled(`DELETE FROM ${shape.target} AS t WHERE ${staged} AND ${taken}`));
  return { left, gone, referencing, replaced };
}

/** Rows in the way whose referenced row this load deleted (on_missing: reject) leave now, as the orphans they are, not after the merge. */
async function vacateOrphans(ctx: LoadContext, shape: TableShape, checks: readonly PlannedCheck[], taken: string): Promise<number> {
  const edges = ctx.edges.filter((e) => e.from.name === shape.table.name && e.action === 'reject');
  if (!edges.some((e) => ctx.gone.of(e.to, ctx.shapeOf(e.to)))) return 0;
  const { session, gone, shapeOf, runId } = ctx;
  return (await settleOrphans({ session, shape, checks, edges, gone, shapeOf, runId, within: taken })).referencing;
}

/** Which batch: this run's staged rows (and what it replaces), or etl_pending's rows offered again (settle.ts). */
export type SharedPass = { readonly from: 'staged'; readonly scope: Scope } | { readonly from: 'pending' };

export interface SharedFigures {
  /** Batch rows refused (duplicate_value), held in etl_pending. */
  readonly held: number;
  /** Rows of the table that shared a value with another holder: held in etl_pending, deleted. */
  readonly left: number;
}

export const NOTHING_SHARED: SharedFigures = { held: 0, left: 0 };

/** Who holds a value, as the rejects file names it: the document's `_id`, or a dedupe row's key. */
const holderOf = (s: TableShape, alias: string): string => (s.docKey ? `${alias}.${s.docKey.id}::text` : `${keyJson(s.key, alias)}::text`);

/**
 * A row (alias) is in the contest only if every reference it would be refused for exists: a pending
 * row waiting for one is no holder, nor is a row of the table whose referenced row this load deleted
 * (it leaves when the orphans are settled, after the merge: orphans.ts).
 */
function referencesPresent(checks: readonly PlannedCheck[], alias: string): string {
  return checks
    .filter((c) => c.action === 'reject' && !c.selfReference)
    .map((c) => ` AND (${alias}.${c.column.id} IS NULL OR EXISTS (SELECT 1 FROM ${c.refTable} AS x WHERE x.${c.refColumn} = ${alias}.${c.column.id}))`)
    .join('');
}

/** Rows of the table (alias t) a staged batch leaves standing: neither replaced by it nor leaving with it. */
function stayingCondition(s: TableShape, pass: SharedPass): string {
  const conditions = [`NOT EXISTS (SELECT 1 FROM ${s.temps.stage} AS a WHERE ${matchKey(s.key, 'a', 't')})`];
  if (pass.from === 'staged') {
    const left = leftCondition(s, pass.scope);
    if (left) conditions.push(`NOT (${left})`);
    if (pass.scope.live && s.docKey) conditions.push(`NOT (${goneCondition(s)})`);
  }
  return conditions.join(' AND ');
}

/** Pending entries (alias p) the staged batch replaces: the leave step forgets them (leave.ts). */
function replacedEntries(s: TableShape, pass: SharedPass, runParameter: number): string {
  if (pass.from === 'pending') return '';
  const { scope } = pass;
  const replaced = scope.complete ? ['true'] : [scopedEntries(s, scope), scope.live && s.docKey ? ownerNotInSql(s.temps.live, 'k') : null].filter((c) => c !== null);
  return replaced.length > 0 ? ` AND (p.seen_run = $${runParameter} OR NOT (${replaced.join(' OR ')}))` : '';
}

/**
 * Every holder of a value of `u` that rows of two keys or more hold, into the shared temp table:
 * batch rows, rows of the table staying as they are, and pending rows in the contest (not the
 * batch's, not replaced by it); of the last two only those whose references exist: the rows a full
 * run would hold against the batch.
 * $1 table, $2 the constraint's columns as the rejects file names them, then their names, then the run id (when used).
 */
function sharedHoldersSql(s: TableShape, u: OtherUnique, checks: readonly PlannedCheck[], pass: SharedPass, runId: string): CompiledQuery {
  const cols = u.columns;
  const us = cols.map((_, i) => `u${i}`).join(', ');
  const pick = (alias: string) => cols.map((c, i) => `${alias}.${c.id} AS u${i}`).join(', ');
  const notBatch = `NOT EXISTS (SELECT 1 FROM ${s.temps.stage} AS a WHERE ${keyJson(s.key, 'a')} = p.row_key)`;
  const run = cols.length + 3;
  const replaced = replacedEntries(s, pass, run);
  const held =
    `SELECT 'batch' AS source, ${keyJson(s.key, 'a')} AS k, ${holderOf(s, 'a')} AS who, ${pick('a')} FROM ${s.temps.stage} AS a UNION ALL ` +
    `SELECT 'pending', p.row_key, coalesce(p.owner, p.row_key::text), ${pick('r')} FROM ${PENDING} AS p CROSS JOIN LATERAL jsonb_populate_record(NULL::${s.target}, p.row) AS r ` +
    `WHERE p.table_name = $1 AND p.kind = 'row' AND ${notBatch}${referencesPresent(checks, 'r')}${replaced}`;
  const inTable = `SELECT 'target', ${keyJson(s.key, 't')}, ${holderOf(s, 't')}, ${pick('t')} FROM ${s.target} AS t WHERE (${list(cols, 't.')}) IN (SELECT ${us} FROM h) AND ${stayingCondition(s, pass)}${referencesPresent(checks, 't')}`;
  const value = `jsonb_build_object(${cols.map((_, i) => `$${i + 3}::text, x.u${i}`).join(', ')})::text`;
  return compiled(
    `WITH h AS (${held}), x AS (SELECT * FROM h UNION ALL ${inTable}), ` +
      `v AS (SELECT ${us}, jsonb_agg(DISTINCT who ORDER BY who) AS documents FROM x WHERE ${cols.map((_, i) => `u${i} IS NOT NULL`).join(' AND ')} GROUP BY ${us} HAVING count(DISTINCT k) > 1) ` +
      `INSERT INTO ${s.temps.shared} (source, k, column_name, value, documents) SELECT x.source, x.k, $2, ${value}, v.documents FROM x JOIN v USING (${us})`,
    [s.table.name, cols.map((c) => c.name).join(', '), ...cols.map((c) => c.name), ...(replaced ? [runId] : [])],
  );
}

/** The batch rows refused, one line a constraint, for the rejects file (reason duplicate_value, naming every holder). */
function refuseSharedSql(s: TableShape): CompiledQuery {
  const key = keyObject(s.key, 'a', 1);
  return compiled(
    `INSERT INTO ${s.temps.rejects} (line, column_name, value, action, reason, documents, row_key) ` +
      `SELECT a.${s.line}, x.column_name, x.value, 'reject', 'duplicate_value', x.documents, ${key.sql} ` +
      `FROM ${s.temps.stage} AS a JOIN ${s.temps.shared} AS x ON x.source = 'batch' AND x.k = ${keyJson(s.key, 'a')}`,
    key.names,
  );
}

const heldKeys = (s: TableShape, source: 'batch' | 'target', alias: string): string => `${keyJson(s.key, alias)} IN (SELECT x.k FROM ${s.temps.shared} AS x WHERE x.source = '${source}')`;

/**
 * A value of another unique constraint that rows of two keys or more would hold: neither row is
 * right, so every holder is refused (duplicate_value) and waits in etl_pending, to land once it holds
 * the value alone (settle.ts offers such entries to every load). A row of the table staying as it is
 * leaves (its references' tables follow, as for any deleted row); pending rows in the contest stay
 * where they are. `beforeRemoval` runs once the refused rows are recorded, while the batch holds them.
 */
export async function holdSharedValues(ctx: LoadContext, shape: TableShape, checks: readonly PlannedCheck[], pass: SharedPass, beforeRemoval?: () => Promise<void>): Promise<SharedFigures> {
  if (shape.otherUniques.length === 0) return NOTHING_SHARED;
  const { session, runId } = ctx;
  session.at(shape.table.name, 'checking unique values');
  await session.run(compiled(`CREATE TEMP TABLE IF NOT EXISTS ${shape.temps.shared} (source text NOT NULL, k jsonb NOT NULL, column_name text NOT NULL, value text NOT NULL, documents jsonb NOT NULL) ON COMMIT DROP`));
  await session.run(compiled(`TRUNCATE ${shape.temps.shared}`));
  let holders = 0;
  for (const u of shape.otherUniques) holders += await session.count(sharedHoldersSql(shape, u, checks, pass, runId));
  if (holders === 0) return NOTHING_SHARED;
  if (pass.from === 'staged') {
    await session.run(createRejectsTableSql(shape.temps.rejects));
    await session.run(refuseSharedSql(shape));
  }
  await holdSharedRows(session, shape, 'batch', runId);
  await beforeRemoval?.();
  const held = await session.count(compiled(`DELETE FROM ${shape.temps.stage} AS a WHERE ${heldKeys(shape, 'batch', 'a')}`));
  await holdSharedRows(session, shape, 'target', runId);
  const left = await ctx.gone.delete(shape, heldKeys(shape, 'target', 't'));
  return { held, left };
}
