// `etl schema`'s plan: every difference between the database and pipeline.yaml (schema/drift.ts) as
// a change with its DDL, sorted into what loses nothing (applied) and what loses or may reject data
// (applied only when `--allow` names it, schema/changes.ts), after asking the data what it must:
// whether a table holds rows, how many NULLs or values a new type cannot hold, which rows a new
// unique constraint or foreign key would refuse (a problem: nothing is applied). Reads only.
import type pg from 'pg';
import type { ColumnModel, PipelineModel, TableModel } from '../model/types.ts';
import { valueTypeText } from '../model/sql-types.ts';
import { addColumnSql, constraintName, dropColumnSql, dropConstraintSql, setNullabilitySql } from './ddl.ts';
import { checkDrift, type DriftFinding } from './drift.ts';
import { loadedTables, retiredTableChanges } from './retired.ts';
import { rekeyedChange } from './rekeyed.ts';
import { tableFingerprint } from '../model/fingerprint.ts';
import { sameColumns } from '../model/other-uniques.ts';
import { readTables, type LiveTable } from './catalog.ts';
import { compiled, ident, runSql } from './sql.ts';
import { contributionsTableName, createStateIndexSql, stateTables } from './state-tables.ts';
import { APPLY_ORDER, isWidening, type DataProblem, type SchemaChange, type SchemaPlan } from './changes.ts';
import { duplicates, hasRows, inputCheck, notConvertibleCondition, notConvertibleCount, nullCount, orphans, referencingRows, rowCount, type InputCheck } from './probes.ts';

type Queryable = pg.Client;

interface Context {
  readonly client: Queryable;
  readonly model: PipelineModel;
  readonly live: ReadonlyMap<string, LiveTable>;
  readonly allow: ReadonlySet<string>;
  /** Columns that do not exist yet (added or renamed to by this plan): nothing to validate in them. */
  readonly fresh: Set<string>;
  /** Of those, the columns added empty (not renamed to): every row of the table holds NULL in them. */
  readonly empty: Set<string>;
  /** Tables etl has loaded (a watermark in etl_watermarks), with the fingerprint stored. */
  readonly loaded: ReadonlyMap<string, string | null>;
  /** How values are checked against a new type, made ready on first use (schema/probes.ts). */
  readonly inputCheck: () => Promise<InputCheck>;
}

const lossless = (c: Omit<SchemaChange, 'allow' | 'risk' | 'deletesRows' | 'neededByLoad'> & Partial<SchemaChange>): SchemaChange => ({
  allow: null,
  risk: null,
  deletesRows: 0,
  neededByLoad: false,
  ...c,
});

export async function planSchema(client: Queryable, model: PipelineModel, allow: readonly string[] = []): Promise<SchemaPlan> {
  const drift = await checkDrift(client, model);
  const live = await readTables(client, [...model.loadOrder]);
  const cleanup: string[] = [];
  const ctx: Context = { client, model, live, allow: new Set(allow), fresh: new Set(), empty: new Set(), loaded: await loadedTables(client), inputCheck: once(() => readyInputCheck(client, cleanup)) };
  const changes: SchemaChange[] = [];
  const problems: DataProblem[] = [];
  const renames = renameCandidates(model, drift.findings);
  for (const r of renames.values()) {
    changes.push(renameChange(r));
    ctx.fresh.add(`${r.table}.${r.add}`);
  }
  for (const f of drift.findings) {
    if (f.kind !== 'missing_column') continue;
    ctx.fresh.add(`${f.table}.${f.column}`);
    const rename = renames.get(`add:${f.table}.${f.column}`);
    if (!rename || !ctx.allow.has(renameChange(rename).allow!)) ctx.empty.add(`${f.table}.${f.column}`);
  }
  for (const f of drift.findings) {
    const t = model.tables.get(f.table);
    const out = t ? await dataTableChange(ctx, t, f, renames, problems) : await stateTableChange(ctx, f);
    changes.push(...out);
  }
  changes.push(...(await retiredTableChanges(client, model)));
  changes.sort((a, b) => applyRank(model, a) - applyRank(model, b) || orderOf(model, a.table) - orderOf(model, b.table));
  return { changes, problems, cleanup };
}

/** The server's input check, its function created when it needs one (dropped by `cleanup`). */
async function readyInputCheck(client: Queryable, cleanup: string[]): Promise<InputCheck> {
  const check = await inputCheck(client);
  for (const sql of check.create) await runSql(client, compiled(sql));
  cleanup.push(...check.drop);
  return check;
}

function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | null = null;
  return () => (made ??= make());
}

/**
 * A change's place in APPLY_ORDER; a NOT NULL dropped goes right after the primary keys: a column
 * leaving the key keeps NOT NULL until the old key is dropped ("column is in a primary key"), where
 * a NOT NULL set stays before them (its NULL rows deleted before a key over the column is added).
 */
function applyRank(model: PipelineModel, c: SchemaChange): number {
  const relaxed = c.kind === 'nullability' && model.tables.get(c.table)?.columns.find((x) => x.name === c.column)?.nullable === true;
  return relaxed ? APPLY_ORDER.indexOf('primary_key') + 0.5 : APPLY_ORDER.indexOf(c.kind);
}

const orderOf = (model: PipelineModel, table: string) => {
  const i = model.loadOrder.indexOf(table);
  return i === -1 ? model.loadOrder.length : i;
};

async function stateTableChange(ctx: Context, f: DriftFinding): Promise<SchemaChange[]> {
  if (f.kind === 'state_column_type') {
    // A contribution the type cannot hold goes (the table's row stays; the next full read stages the document again).
    const check = await ctx.inputCheck();
    const sql = [`DELETE FROM ${ident(f.table)} WHERE ${notConvertibleCondition(f.column!, f.expected!, check)}`, ...f.fix];
    return [lossless({ kind: 'state_column_type', table: f.table, column: f.column, message: `${f.message}: altered`, sql, neededByLoad: true })];
  }
  const t = stateTables(ctx.model).find((s) => s.name === f.table)!;
  if (f.kind === 'missing_table') {
    const sql = [...f.fix, ...(t.indexes ?? []).map((i) => createStateIndexSql(t, i))];
    return [lossless({ kind: 'create_state_table', table: f.table, column: null, message: `${f.message}: created (${t.purpose})`, sql, neededByLoad: true })];
  }
  return [lossless({ kind: 'add_state_column', table: f.table, column: f.column, message: f.message, sql: f.fix, neededByLoad: true })];
}

interface Rename {
  readonly table: string;
  readonly drop: string;
  readonly add: string;
}

/** A column pipeline.yaml adds and a column it no longer has, of the same type, in one table: maybe a rename. */
function renameCandidates(model: PipelineModel, findings: readonly DriftFinding[]): Map<string, Rename> {
  const out = new Map<string, Rename>();
  for (const name of model.loadOrder) {
    const extra = findings.filter((f) => f.table === name && f.kind === 'extra_column');
    const taken = new Set<string>();
    for (const m of findings.filter((f) => f.table === name && f.kind === 'missing_column')) {
      const type = model.tables.get(name)!.columns.find((c) => c.name === m.column)!.sqlTypeText;
      const e = extra.find((x) => x.actual === type && !taken.has(x.column!));
      if (!e) continue;
      taken.add(e.column!);
      out.set(`add:${name}.${m.column}`, { table: name, drop: e.column!, add: m.column! });
    }
  }
  return out;
}

function renameChange(r: Rename): SchemaChange {
  return {
    kind: 'rename_column',
    table: r.table,
    column: r.add,
    message: `"${r.table}"."${r.drop}" is not in pipeline.yaml and "${r.add}" of the same type is new: a rename looks like a drop plus an add`,
    sql: [`ALTER TABLE ${ident(r.table)} RENAME COLUMN ${ident(r.drop)} TO ${ident(r.add)}`],
    allow: `rename-column:${r.table}.${r.drop}=${r.add}`,
    risk: `renaming keeps the values of "${r.drop}" under the new name; adding "${r.add}" instead (add-column:${r.table}.${r.add}) keeps "${r.drop}" as an extra column, and drop-column:${r.table}.${r.drop} drops it`,
    deletesRows: 0,
    replaces: { add: r.add, drop: r.drop },
    neededByLoad: true,
  };
}

async function dataTableChange(ctx: Context, t: TableModel, f: DriftFinding, renames: ReadonlyMap<string, Rename>, problems: DataProblem[]): Promise<SchemaChange[]> {
  const base = { table: t.name, column: f.column, message: f.message };
  switch (f.kind) {
    case 'missing_table':
      return [lossless({ ...base, kind: 'create_table', message: `${f.message}: created`, sql: f.fix, neededByLoad: true })];
    case 'missing_column':
      return [await addColumn(ctx, t, t.columns.find((c) => c.name === f.column)!, renames.get(`add:${t.name}.${f.column}`) ?? null)];
    case 'extra_column':
      return [dropColumn(t, f.column!, droppedColumnMessage(ctx, t, f.column!)), ...keptColumnNullable(ctx, t, f.column!, renames)];
    case 'type':
      return [await changeType(ctx, t, t.columns.find((c) => c.name === f.column)!, f)];
    case 'nullability': {
      const c = t.columns.find((x) => x.name === f.column)!;
      // Its NOT NULL is the old primary key's: dropped with that key (primaryKey), never before it.
      if (leavesLiveKey(ctx, t, c)) return [];
      return [await nullability(ctx, t, c, f)];
    }
    case 'primary_key':
      return primaryKey(ctx, t, f, problems);
    case 'missing_foreign_key':
      return foreignKey(ctx, t, f, problems);
    case 'missing_unique':
      return unique(ctx, t, f, problems);
    case 'extra_unique':
    case 'extra_foreign_key':
      return [dropExtraConstraint(ctx, t, f)];
    case 'foreign_key_not_deferrable':
      return [lossless({ ...base, kind: 'make_deferrable', sql: f.fix })];
    default:
      return [];
  }
}

async function addColumn(ctx: Context, t: TableModel, c: ColumnModel, rename: Rename | null): Promise<SchemaChange> {
  let sql = addColumnSql(t, c);
  let message = `column "${t.name}"."${c.name}" is missing: added; the next run reads ${t.collection} in full to fill it (mapping changed)`;
  if (!c.nullable && (await hasRows(ctx.client, t.name))) {
    const emptied = await emptiedForKey(ctx, t, c);
    if (emptied) return emptied;
    // The rows there have no value yet: NOT NULL follows once a run has filled the column.
    sql = addColumnSql(t, { ...c, nullable: true });
    message += '; NOT NULL once filled: run `etl schema` again after that run';
  }
  const change = lossless({ kind: 'add_column', table: t.name, column: c.name, message, sql: [sql], neededByLoad: true });
  if (!rename) return change;
  return {
    ...change,
    allow: `add-column:${t.name}.${c.name}`,
    alsoAllowedBy: [`drop-column:${t.name}.${rename.drop}`],
    risk: `it may be the rename of "${rename.drop}" (rename-column:${t.name}.${rename.drop}=${c.name} keeps its values); added as a new column, it starts empty`,
  };
}

/**
 * A primary key column pipeline.yaml adds to a table holding rows: no run can fill it before the key
 * exists (load merges on the key), and the key cannot hold the rows' NULLs. With --allow
 * not-null:<table>.<column> the rows go first (the table's mapping changed, so the next run reads it
 * in full and loads every row again), then the column is added NOT NULL and the key after it
 * (clearedOfNulls). Null otherwise: the key's check then refuses the plan (validated).
 */
async function emptiedForKey(ctx: Context, t: TableModel, c: ColumnModel): Promise<SchemaChange | null> {
  const allow = `not-null:${t.name}.${c.name}`;
  if (!t.primaryKey.includes(c.name) || !ctx.allow.has(allow) || !(await clearedOfNulls(ctx, t, [c.name])).has(c.name)) return null;
  const rows = await rowCount(ctx.client, t.name);
  return {
    kind: 'add_column',
    table: t.name,
    column: c.name,
    message: `column "${t.name}"."${c.name}" of the primary key is missing, and the ${rows} row(s) there have no value for it`,
    sql: [`DELETE FROM ${ident(t.name)}`, addColumnSql(t, c)],
    allow,
    risk: `the ${rows} row(s) are deleted, then the column is added NOT NULL; the next run reads ${t.collection} in full and loads every row again`,
    deletesRows: rows,
    neededByLoad: true,
  };
}

/**
 * The column and the change, true whichever way it is decided: `apply`, `applied` and `refused` precede
 * it (the drift finding's own message says the column is kept, false once the drop is applied).
 */
function droppedColumnMessage(ctx: Context, t: TableModel, column: string): string {
  const rawType = ctx.live.get(t.name)?.columns.find((c) => c.name === column)?.rawType;
  return `column "${t.name}"."${column}"${rawType ? ` (${rawType})` : ''} is not in pipeline.yaml (drop column)`;
}

/**
 * A column pipeline.yaml no longer has stays until --allow drops it (or renames it), with its values;
 * but load writes rows without it, which its NOT NULL would refuse (every row of the table, as a
 * changed mapping reads it in full): so its NOT NULL goes, which loses nothing. Not for a column with
 * a default (an insert still gives it a value), one of the primary key, or one --allow drops or renames.
 */
function keptColumnNullable(ctx: Context, t: TableModel, column: string, renames: ReadonlyMap<string, Rename>): SchemaChange[] {
  const live = ctx.live.get(t.name);
  const c = live?.columns.find((x) => x.name === column);
  if (!c || c.nullable || c.hasDefault || live!.primaryKey?.columns.includes(column)) return [];
  const decided = [`drop-column:${t.name}.${column}`, ...[...renames.values()].filter((r) => r.table === t.name && r.drop === column).map((r) => `rename-column:${t.name}.${r.drop}=${r.add}`)];
  if (decided.some((token) => ctx.allow.has(token))) return [];
  return [
    lossless({
      kind: 'nullability',
      table: t.name,
      column,
      message: `column "${t.name}"."${column}" is not in pipeline.yaml and NOT NULL: NOT NULL dropped, so loads can write rows without it (it keeps its values until --allow drop-column:${t.name}.${column} drops it)`,
      sql: [`ALTER TABLE ${ident(t.name)} ALTER COLUMN ${ident(column)} DROP NOT NULL`],
    }),
  ];
}

function dropColumn(t: TableModel, column: string, message: string): SchemaChange {
  return {
    kind: 'drop_column',
    table: t.name,
    column,
    message,
    sql: [dropColumnSql(t.name, column)],
    allow: `drop-column:${t.name}.${column}`,
    risk: `its values are lost (no run of etl can bring them back: pipeline.yaml no longer maps it)`,
    deletesRows: 0,
    neededByLoad: false,
  };
}

/**
 * A dedupe table's contributions (etl_contrib_<table>) hold its staged columns with the table's types:
 * a column's new type is theirs too, or load would store each contribution as the old type (a
 * TIMESTAMP cut to its DATE) and recompute the keys from those values. A contribution the new type
 * cannot hold goes (the next run reads the table in full and stages its document again).
 */
function contributionsTypeSql(t: TableModel, c: ColumnModel, widening: boolean, check: InputCheck | null): string[] {
  if (t.strategy !== 'dedupe' || !t.stagedColumns.some((s) => s.name === c.name)) return [];
  const contrib = ident(contributionsTableName(t.name));
  const type = valueTypeText(c.sqlType);
  const alter = `ALTER TABLE ${contrib} ALTER COLUMN ${ident(c.name)} TYPE ${type} USING ${ident(c.name)}::${type}`;
  return widening || !check ? [alter] : [`DELETE FROM ${contrib} WHERE ${notConvertibleCondition(c.name, type, check)}`, alter];
}

async function changeType(ctx: Context, t: TableModel, c: ColumnModel, f: DriftFinding): Promise<SchemaChange> {
  const base = { kind: 'change_type' as const, table: t.name, column: c.name, sql: f.fix };
  if (isWidening(f.actual ?? '', c.sqlType)) {
    return lossless({ ...base, sql: [...f.fix, ...contributionsTypeSql(t, c, true, null)], message: `${f.message}: widened (every value fits); the next run reads ${t.collection} in full` });
  }
  const check = await ctx.inputCheck();
  const bad = await notConvertibleCount(ctx.client, t.name, c.name, c.sqlTypeText, check);
  const condition = notConvertibleCondition(c.name, c.sqlTypeText, check);
  const sql = [...(bad > 0 ? [`DELETE FROM ${ident(t.name)} WHERE ${condition}`, ...f.fix] : f.fix), ...contributionsTypeSql(t, c, false, check)];
  const allow = `type:${t.name}.${c.name}`;
  return {
    ...base,
    sql,
    message: `${f.message}: not a widening`,
    allow,
    risk:
      `${c.sqlTypeText} may not hold what ${f.actual} holds: ` +
      (bad > 0 ? `${bad} row(s) hold a value it cannot take and are deleted; ${backAfterFullRead(t, `whose document's value transform writes as ${c.sqlTypeText}${c.sqlType.kind === 'jsonb' ? ' (a string, as a JSON string)' : ''}`)}` : 'every value there fits today, later values may be rejected'),
    deletesRows: bad,
    neededByLoad: false,
    ...(bad > 0 ? await referencedRowsBlock(ctx, t, condition, allow) : {}),
  };
}

/**
 * What becomes of rows a type or NOT NULL change deletes: PostgreSQL's check is not transform's (it
 * cannot convert the text `hello` to JSONB, where transform writes the string as `"hello"`), and the
 * change alters the table's mapping, so the next run reads it in full and stages every row anew.
 */
const backAfterFullRead = (t: TableModel, which: string): string =>
  `the next run reads ${t.collection} in full: a row ${which} comes back, a full run rejects the others`;

/**
 * Rows `etl schema` would delete that rows of other tables reference: deleting them here would
 * leave those rows dangling (or delete them with no trace in etl_pending), where a run deletes them
 * and follows their references as pipeline.yaml says. So the change waits for a run.
 */
async function referencedRowsBlock(ctx: Context, t: TableModel, condition: string, allow: string): Promise<{ blocked?: string }> {
  const referencing = Object.entries(await referencingRows(ctx.client, t.name, condition));
  if (referencing.length === 0) return {};
  const which = referencing.map(([table, n]) => `${n} row(s) of "${table}"`).join(', ');
  return {
    blocked:
      `${which} reference the rows it would delete: run \`etl run\` with this pipeline.yaml first (it reads ${t.collection} in full, ` +
      `rejects the rows the new definition cannot hold and follows the rows that reference them as pipeline.yaml says), then \`etl schema --allow ${allow}\` again`,
  };
}

async function nullability(ctx: Context, t: TableModel, c: ColumnModel, f: DriftFinding): Promise<SchemaChange> {
  const base = { kind: 'nullability' as const, table: t.name, column: c.name };
  if (c.nullable) return lossless({ ...base, message: `${f.message}: NOT NULL dropped`, sql: f.fix });
  const nulls = await nullCount(ctx.client, t.name, c.name);
  if (nulls === 0) return lossless({ ...base, message: `${f.message}: no row holds NULL, NOT NULL set`, sql: f.fix });
  const condition = `${ident(c.name)} IS NULL`;
  const allow = `not-null:${t.name}.${c.name}`;
  return {
    ...base,
    message: `${f.message}, and ${nulls} row(s) hold NULL`,
    sql: [`DELETE FROM ${ident(t.name)} WHERE ${condition}`, setNullabilitySql(t, c)],
    allow,
    risk: `the ${nulls} row(s) holding NULL are deleted; ${backAfterFullRead(t, 'whose document now gives the column a value (its field changed)')}`,
    deletesRows: nulls,
    neededByLoad: false,
    ...(await referencedRowsBlock(ctx, t, condition, allow)),
  };
}

async function primaryKey(ctx: Context, t: TableModel, f: DriftFinding, problems: DataProblem[]): Promise<SchemaChange[]> {
  const add = f.fix.filter((s) => !s.startsWith('--'));
  const change: SchemaChange = !f.constraint
    ? lossless({ kind: 'primary_key', table: t.name, column: null, message: f.message, sql: add })
    : {
        kind: 'primary_key',
        table: t.name,
        column: null,
        message: f.message,
        sql: [dropConstraintSql(t.name, f.constraint), ...add, ...releasedColumnsSql(ctx, t)],
        allow: `primary-key:${t.name}`,
        risk: `rows are then identified by other columns; foreign keys that reference the old key stop the change${mergesOnMissingKey(ctx, t) ? `; load merges "${t.name}" on this key (ON CONFLICT), so runs fail until it is applied` : ''}`,
        deletesRows: 0,
        neededByLoad: mergesOnMissingKey(ctx, t),
      };
  if (add.length === 0) return [change];
  const columns = keyColumns(t, f);
  if (change.allow !== null && !ctx.allow.has(change.allow)) return [await withKeyNotNulls(ctx, t, columns, change)];
  const cleared = await clearedOfNulls(ctx, t, columns);
  const nulls = await Promise.all(columns.map((c) => keyNulls(ctx, t, c, cleared)));
  const rekeyed = nulls.every((n) => n === 0) ? await rekeyedDedupeKey(ctx, t, columns, change) : null;
  if (rekeyed) return [rekeyed];
  return (await validated(ctx, t, f, problems, nulls)) ? [change] : [];
}

/**
 * A column pipeline.yaml declares nullable that the table's primary key in the database holds, and
 * pipeline.yaml's key does not: PostgreSQL refuses DROP NOT NULL on it while that key exists.
 */
function leavesLiveKey(ctx: Context, t: TableModel, c: ColumnModel): boolean {
  return c.nullable && !t.primaryKey.includes(c.name) && (ctx.live.get(t.name)?.primaryKey?.columns.includes(c.name) ?? false);
}

/** The NOT NULL of the columns the replaced key leaves (leavesLiveKey), dropped after the old key goes. */
function releasedColumnsSql(ctx: Context, t: TableModel): string[] {
  return t.columns.filter((c) => leavesLiveKey(ctx, t, c)).map((c) => setNullabilitySql(t, c));
}

/**
 * Load merges the table's rows on its primary key in pipeline.yaml (ON CONFLICT over those columns),
 * and no primary key or unique index of the table in the database is over exactly those columns:
 * every load of the table fails until the key is changed.
 */
function mergesOnMissingKey(ctx: Context, t: TableModel): boolean {
  if (t.mergeKey.length === 0 || !sameColumns(t.mergeKey, t.primaryKey)) return false;
  const live = ctx.live.get(t.name);
  const keys = [...(live?.primaryKey ? [live.primaryKey] : []), ...(live?.uniques ?? [])];
  return !keys.some((k) => sameColumns(k.columns, t.mergeKey));
}

/**
 * A refused primary key replacement with the not-null: of each key column that holds NULL (a column
 * the same plan adds empty: every row) and that --allow does not name yet: the key cannot be added
 * over those NULLs, so the refusal names every flag that applies it, not one that fails again.
 */
async function withKeyNotNulls(ctx: Context, t: TableModel, columns: readonly string[], change: SchemaChange): Promise<SchemaChange> {
  const along: string[] = [];
  for (const c of columns) {
    const token = `not-null:${t.name}.${c}`;
    if (!ctx.allow.has(token) && (await keyNulls(ctx, t, c, new Set())) > 0) along.push(token);
  }
  return along.length === 0 ? change : { ...change, alongWith: along };
}

/** The rows holding NULL in a key column: all of them in a column added empty, none in one renamed to or cleared first. */
async function keyNulls(ctx: Context, t: TableModel, column: string, cleared: ReadonlySet<string>): Promise<number> {
  if (cleared.has(column)) return 0;
  if (ctx.empty.has(`${t.name}.${column}`)) return rowCount(ctx.client, t.name);
  return ctx.fresh.has(`${t.name}.${column}`) ? 0 : nullCount(ctx.client, t.name, column);
}

/**
 * Key columns whose rows holding NULL the NOT NULL change --allow not-null: names deletes before the
 * key is added (APPLY_ORDER: nullability first): a primary key makes its columns NOT NULL, and a full
 * run rejects those rows. Not when other rows reference them: that change then waits for a run.
 */
async function clearedOfNulls(ctx: Context, t: TableModel, columns: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const c of columns) {
    if (!ctx.allow.has(`not-null:${t.name}.${c}`) || t.columns.find((x) => x.name === c)?.nullable !== false) continue;
    // A column added empty is NULL in every row (emptiedForKey deletes them all).
    const condition = ctx.empty.has(`${t.name}.${c}`) ? 'true' : `${ident(c)} IS NULL`;
    if (Object.keys(await referencingRows(ctx.client, t.name, condition)).length === 0) out.add(c);
  }
  return out;
}

/** A unique or foreign key the tool named (its pattern) is the tool's to drop; another is a person's. */
function dropExtraConstraint(ctx: Context, t: TableModel, f: DriftFinding): SchemaChange {
  const name = f.constraint!;
  const isUnique = f.kind === 'extra_unique';
  const liveKey = isUnique ? ctx.live.get(t.name)?.uniques.find((u) => u.name === name) : ctx.live.get(t.name)?.foreignKeys.find((k) => k.name === name);
  const own = liveKey !== undefined && name === constraintName(t.name, liveKey.columns, isUnique ? 'key' : 'fkey') && (!isUnique || liveKey.isConstraint !== false);
  const sql = isUnique && (liveKey as { isConstraint?: boolean } | undefined)?.isConstraint === false ? `DROP INDEX ${ident(name)}` : dropConstraintSql(t.name, name);
  const base = { kind: 'drop_constraint' as const, table: t.name, column: f.column, sql: [sql] };
  if (own) return lossless({ ...base, message: `${f.message}: dropped (named as etl names its own; no row is lost)` });
  return {
    ...base,
    message: f.message,
    allow: `drop-constraint:${t.name}.${name}`,
    risk: 'no row is lost, but etl did not create it: someone may rely on it',
    deletesRows: 0,
    neededByLoad: false,
  };
}

/**
 * A unique constraint pipeline.yaml adds, checked against the rows. A dedupe table's new key (its
 * merge key: load's ON CONFLICT needs it; or a primary key over it) over rows the old key made is the
 * exception: the next run reads the table in full (its mapping changed) and recomputes every row by
 * the new key, so keys holding several rows keep one until then (schema/rekeyed.ts) rather than stop
 * everything.
 */
async function unique(ctx: Context, t: TableModel, f: DriftFinding, problems: DataProblem[]): Promise<SchemaChange[]> {
  const change = lossless({ kind: 'add_unique', table: t.name, column: f.column, message: f.message, sql: f.fix });
  const rekeyed = await rekeyedDedupeKey(ctx, t, keyColumns(t, f), change);
  if (rekeyed) return [rekeyed];
  return (await validated(ctx, t, f, problems)) ? [change] : [];
}

/**
 * A key (unique constraint or primary key) of a dedupe table the next run reads in full, over rows
 * the old dedupe key made: the change with the DELETE that keeps one row per new key first
 * (schema/rekeyed.ts); null when that does not apply, and the rows are checked as usual.
 */
async function rekeyedDedupeKey(ctx: Context, t: TableModel, columns: readonly string[], change: SchemaChange): Promise<SchemaChange | null> {
  if (!t.dedupe || !rereadInFull(ctx, t) || columns.some((c) => ctx.fresh.has(`${t.name}.${c}`))) return null;
  return rekeyedChange(ctx.client, t, columns, change);
}

/**
 * The table's stored mapping fingerprint differs from the current one (a changed mapping, or a table
 * back in pipeline.yaml after it was retired): the next run reads it in full and replaces every row.
 */
function rereadInFull(ctx: Context, t: TableModel): boolean {
  const stored = ctx.loaded.get(t.name);
  return typeof stored === 'string' && stored !== tableFingerprint(t, ctx.model.settings);
}

/**
 * A foreign key pipeline.yaml adds, checked against the rows. In a table the next run reads in full
 * (its mapping changed, or it is back in pipeline.yaml), rows that break it wait for that run, which
 * replaces them (a missing reference rejected or NULLed as on_missing says): the key is added by the
 * `etl schema` after that run. Elsewhere they are a problem: nothing is applied.
 */
async function foreignKey(ctx: Context, t: TableModel, f: DriftFinding, problems: DataProblem[]): Promise<SchemaChange[]> {
  const change = lossless({ kind: 'add_foreign_key', table: t.name, column: f.column, message: f.message, sql: f.fix });
  if (!rereadInFull(ctx, t) || ctx.fresh.has(`${t.name}.${f.column}`)) return (await validated(ctx, t, f, problems)) ? [change] : [];
  const v = await foreignKeyViolations(ctx, t, f);
  if (v.count === 0) return [change];
  return [
    {
      ...change,
      blocked:
        `${v.count} row(s) reference no existing row (e.g. ${v.examples[0] ?? '?'}), and the mapping of "${t.name}" changed since its last load: ` +
        `the next run reads ${t.collection} in full and replaces them; run \`etl schema\` again after that run to add the key`,
    },
  ];
}

async function foreignKeyViolations(ctx: Context, t: TableModel, f: DriftFinding): Promise<{ count: number; examples: string[] }> {
  const c = t.columns.find((x) => x.name === f.column)!;
  const fk = { table: t.name, column: c.name, refTable: c.foreignKey!.table, refColumn: c.foreignKey!.column };
  if (!ctx.live.has(fk.refTable) || ctx.fresh.has(`${fk.refTable}.${fk.refColumn}`)) return orphansOfMissing(ctx, fk);
  return orphans(ctx.client, fk, t.primaryKey);
}

/**
 * Checks the rows against a key pipeline.yaml adds; records a problem (with examples) when they break
 * it. A primary key's `keyNulls` are its columns' NULL counts as primaryKey() counted them (0 for a
 * column an allowed NOT NULL change clears first).
 */
async function validated(ctx: Context, t: TableModel, f: DriftFinding, problems: DataProblem[], keyNulls: readonly number[] = []): Promise<boolean> {
  const columns = f.kind === 'missing_foreign_key' ? [f.column!] : keyColumns(t, f);
  // A column this plan adds holds no value to check, but NULL in every row, which a primary key refuses (keyNulls).
  if (columns.some((c) => ctx.fresh.has(`${t.name}.${c}`)) && keyNulls.every((n) => n === 0)) return true;
  if (f.kind === 'missing_foreign_key') return noteProblem(problems, t, f, await foreignKeyViolations(ctx, t, f));
  // Duplicates need every column there: a key over a column added empty is refused for its NULLs alone.
  const dupes = columns.some((c) => ctx.fresh.has(`${t.name}.${c}`)) ? { count: 0, examples: [] as string[] } : await duplicates(ctx.client, t.name, columns);
  if (f.kind === 'primary_key') {
    const n = keyNulls.reduce((a, b) => a + b, 0);
    columns.forEach((c, i) => {
      const nulls = keyNulls[i] ?? 0;
      if (nulls === 0) return;
      const fix = `--allow not-null:${t.name}.${c} deletes them`;
      dupes.examples.unshift(
        ctx.empty.has(`${t.name}.${c}`)
          ? `${nulls} row(s) have no value in "${c}", a column this change adds, which a primary key never holds: ${fix} (the next run reads ${t.collection} in full and loads every row again)`
          : `${nulls} row(s) hold NULL in "${c}", which a primary key never holds: ${fix} (a full run rejects them)`,
      );
    });
    return noteProblem(problems, t, f, { count: dupes.count + n, examples: dupes.examples });
  }
  return noteProblem(problems, t, f, dupes);
}

function keyColumns(t: TableModel, f: DriftFinding): string[] {
  if (f.kind === 'primary_key') return [...t.primaryKey];
  // drift's `expected` is the model's column list as `(a, b)`.
  return [...(t.uniqueConstraints.find((u) => `(${u.join(', ')})` === f.expected) ?? [])];
}

async function orphansOfMissing(ctx: Context, fk: { table: string; column: string }): Promise<{ count: number; examples: string[] }> {
  const r = await runSql<{ n: string }>(ctx.client, compiled(`SELECT count(*) AS n FROM ${ident(fk.table)} WHERE ${ident(fk.column)} IS NOT NULL`));
  const n = Number(r.rows[0]!.n);
  return { count: n, examples: n > 0 ? [`${n} row(s) reference a table that does not exist yet`] : [] };
}

function noteProblem(problems: DataProblem[], t: TableModel, f: DriftFinding, v: { count: number; examples: string[] }): boolean {
  if (v.count === 0) return true;
  const what = f.kind === 'missing_foreign_key' ? `${v.count} row(s) reference no existing row` : `${v.count} duplicate value(s) (or NULLs)`;
  problems.push({ table: t.name, constraint: f.fix.find((s) => !s.startsWith('--')) ?? f.message, message: `${f.message}, but ${what}: it cannot be added`, count: v.count, examples: v.examples });
  return false;
}
