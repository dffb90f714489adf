// `etl schema`: makes the database match pipeline.yaml, in one transaction, so a failure leaves it as
// it was. What is missing is created (tables in load order, state tables, state-table columns a newer
// version declares); with `alter`, every other difference that loses nothing is applied too (new
// columns, widenings, dropped NOT NULL, keys validated against the rows first) and those that lose or
// may reject data only when `--allow` names them (schema/changes.ts, schema/plan.ts).
import type pg from 'pg';
import type { PipelineModel } from '../model/types.ts';
import { LoadError } from '../errors/etl-error.ts';
import { accessHint } from '../errors/codes.ts';
import { createTableSql } from './ddl.ts';
import { existingIndexes, existingTables, readTables } from './catalog.ts';
import { addStateColumnSql, createStateIndexSql, createStateTableSql, stateTables } from './state-tables.ts';
import { decide, type DataProblem, type Decision, type SchemaChange, type SchemaPlan } from './changes.ts';
import { planSchema } from './plan.ts';
import { inTransaction } from '../connect/postgres.ts';
import { compiled, ident, runSql } from './sql.ts';
import { takeXactLock } from './advisory-lock.ts';
import type { PostgresConfig } from '../connect/config.ts';
import { watchTransaction } from '../connect/lock-waits.ts';

/**
 * The lock `etl schema` and load's ensureSchema share (a transaction-level advisory lock; its key is
 * the server's hashtext of 'etl schema', as every earlier version of etl took it).
 */
const TRY_SCHEMA_LOCK = compiled(`SELECT pg_try_advisory_xact_lock(k) AS ok, k::text AS key FROM (SELECT hashtext('etl schema')::bigint AS k) AS lock`);

export interface SchemaReport {
  /** Tables created by this call, in creation order (data tables in load order, then state tables). */
  readonly created: readonly string[];
  /** Tables that already existed. */
  readonly existing: readonly string[];
  /** The statements run, in order. */
  readonly statements: readonly string[];
  /** With `alter`: the changes applied, the ones refused (no --allow), --allow tokens that matched nothing. */
  readonly applied: readonly SchemaChange[];
  readonly refused: readonly SchemaChange[];
  readonly unusedAllows: readonly string[];
  /** Changes an --allow names that cannot be applied yet (each says why): among `refused`. */
  readonly blocked: readonly SchemaChange[];
  /** Rows deleted by allowed changes (values a new type or NOT NULL cannot hold), by table. */
  readonly deletedRows: Readonly<Record<string, number>>;
}

export interface ApplyOptions extends SchemaLockWait {
  /** The database's configuration: while applying, a second connection tells `onWait` which sessions hold a lock a statement waits for. */
  readonly watchFrom?: PostgresConfig;
  /** Also change existing tables (the plan's lossless changes and the allowed ones). Default: only create. */
  readonly alter?: boolean;
  /** `--allow` tokens. */
  readonly allow?: readonly string[];
  /** The statements a person approved: if the plan made under the lock differs, nothing is applied. */
  readonly approved?: readonly string[];
}

/** Every CREATE statement for the model, in load order, then the state tables: what --dry-run prints. */
export function schemaSql(model: PipelineModel): { table: string; sql: string }[] {
  return [
    ...model.loadOrder.map((name) => ({ table: name, sql: createTableSql(model.tables.get(name)!) })),
    ...stateTables(model).map((t) => ({ table: t.name, sql: createStateTableSql(t) })),
  ];
}

/**
 * Creates the missing tables of the model and the missing state tables, adds the columns and indexes
 * newer versions declare to existing state tables. Call inside a transaction (load's ensureSchema does).
 */
export async function createMissing(client: pg.Client, model: PipelineModel): Promise<{ created: string[]; existing: string[]; statements: string[] }> {
  const wanted = schemaSql(model);
  const present = await existingTables(
    client,
    wanted.map((w) => w.table),
  );
  const created: string[] = [];
  const existing: string[] = [];
  const statements: string[] = [];
  for (const { table, sql } of wanted) {
    if (present.has(table)) {
      existing.push(table);
      continue;
    }
    await run(client, sql, `cannot create table "${table}"`, table);
    created.push(table);
    statements.push(sql);
  }
  // Tables created just now already have every column; their indexes are created below.
  statements.push(...(await migrateStateTables(client, model, present)));
  return { created, existing, statements };
}

/** Adds what a newer version declares to existing state tables: columns (nullable or defaulted), indexes. */
async function migrateStateTables(client: pg.Client, model: PipelineModel, present: ReadonlySet<string>): Promise<string[]> {
  const tables = stateTables(model);
  const live = await readTables(client, tables.filter((t) => present.has(t.name)).map((t) => t.name));
  const indexes = await existingIndexes(client, tables.flatMap((t) => (t.indexes ?? []).map((i) => i.name)));
  const statements: string[] = [];
  for (const t of tables) {
    const l = live.get(t.name);
    for (const c of l ? t.columns.filter((c) => !l.columns.some((x) => x.name === c.name)) : []) statements.push(addStateColumnSql(t, c));
    for (const i of t.indexes ?? []) {
      const columns = indexes.get(i.name);
      if (columns === undefined) statements.push(createStateIndexSql(t, i));
      // A dedupe key changed: the contributions' index follows it, or every lookup by key reads the whole table.
      else if (columns.join('\u0000') !== i.columns.join('\u0000')) statements.push(`DROP INDEX ${ident(i.name)}`, createStateIndexSql(t, i));
    }
  }
  for (const sql of statements) await run(client, sql, 'cannot update a state table of etl', null);
  return statements;
}

async function run(client: pg.Client, sql: string, what: string, table: string | null): Promise<pg.QueryResult> {
  try {
    return await runSql(client, compiled(sql));
  } catch (cause) {
    const e = cause as { message?: string };
    throw new LoadError('schema_create_failed', `${what}: ${e.message ?? String(cause)}`, {
      cause,
      context: table ? { table } : {},
      hint: accessHint(cause) ?? 'run `etl schema --check` to compare the database with pipeline.yaml',
    });
  }
}

/** How a command waits for the schema lock: it says so once (`onWait`), and stops at `signal`. */
export interface SchemaLockWait {
  /** Whom the command waits for; null once it no longer waits. */
  readonly onWait?: (message: string | null) => void;
  readonly signal?: AbortSignal;
}

/**
 * Takes the lock `etl schema` and load's ensureSchema share, so two never race between check and
 * change; while another holds it (a load holds it to its end), says whom it waits for.
 */
export async function lockSchema(client: pg.Client, wait: SchemaLockWait = {}): Promise<void> {
  await takeXactLock(client, TRY_SCHEMA_LOCK, {
    signal: wait.signal,
    onWait: (who) => wait.onWait?.(who === null ? null : `waiting for the etl load or etl schema changing this database to finish${who}…`),
  });
}

export async function applySchema(client: pg.Client, model: PipelineModel, options: ApplyOptions = {}): Promise<SchemaReport> {
  return inTransaction(client, async () => {
    const watch = options.watchFrom && options.onWait ? await watchTransaction(client, options.watchFrom, options.onWait) : null;
    try {
      await lockSchema(client, options);
      return options.alter ? await alterSchema(client, model, options) : { ...(await createMissing(client, model)), ...NOTHING_ALTERED };
    } finally {
      await watch?.stop();
    }
  });
}

const NOTHING_ALTERED = { applied: [], refused: [], unusedAllows: [], blocked: [], deletedRows: {} } as const;

async function alterSchema(client: pg.Client, model: PipelineModel, options: ApplyOptions): Promise<SchemaReport> {
  const allow = options.allow ?? [];
  const plan = await planSchema(client, model, allow);
  if (plan.problems.length > 0) throw dataProblems(plan.problems);
  const decision = decide(plan, allow);
  const statements = decision.apply.flatMap((c) => c.sql);
  if (options.approved && !sameList(options.approved, statements)) {
    throw new LoadError('schema_changed_meanwhile', 'the database changed between the plan shown and the confirmation: nothing was applied', {
      hint: 'run `etl schema` again to see the current plan',
    });
  }
  const present = await existingTables(client, schemaSql(model).map((w) => w.table));
  const deletedRows: Record<string, number> = {};
  for (const change of decision.apply) {
    for (const sql of change.sql) {
      const r = await run(client, sql, `cannot apply "${change.message}"`, change.table);
      if (deletesOwnRows(sql, change.table)) deletedRows[change.table] = (deletedRows[change.table] ?? 0) + (r.rowCount ?? 0);
    }
  }
  const created = decision.apply.filter((c) => c.kind === 'create_table' || c.kind === 'create_state_table').map((c) => c.table);
  for (const sql of plan.cleanup) await run(client, sql, 'cannot drop the temporary function etl schema checked values with', null);
  const more = await migrateStateTables(client, model, await existingTables(client, stateTables(model).map((t) => t.name)));
  return {
    created,
    existing: [...present].filter((t) => !created.includes(t)),
    statements: [...statements, ...more],
    applied: decision.apply,
    refused: decision.refused,
    unusedAllows: decision.unused,
    blocked: decision.blocked,
    deletedRows,
  };
}

/**
 * A DELETE of the change's table's own rows (a type or NOT NULL its rows cannot meet), as opposed to
 * one forgetting a retired table's entries in etl's state tables, which deletes none of its rows.
 */
const deletesOwnRows = (sql: string, table: string): boolean => sql.startsWith(`DELETE FROM ${ident(table)} `);

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The rows break a key pipeline.yaml adds: nothing is applied; the message shows a few of them. */
export function dataProblems(problems: readonly DataProblem[]): LoadError {
  const lines = problems.flatMap((p) => [`${p.table}: ${p.message}`, ...p.examples.map((e) => `    e.g. ${e}`)]);
  return new LoadError('schema_data_conflict', `the rows in the database break ${problems.length} key(s) pipeline.yaml adds; nothing was applied:\n  ${lines.join('\n  ')}`, {
    context: { table: problems[0]!.table },
    hint: 'fix or delete those rows (or change pipeline.yaml), then run `etl schema` again',
  });
}

/** The plan and what `etl schema` would do with it (for --check, the prompt and --json). */
export async function previewSchema(client: pg.Client, model: PipelineModel, allow: readonly string[]): Promise<{ plan: SchemaPlan; decision: Decision }> {
  const plan = await planSchema(client, model, allow);
  for (const sql of plan.cleanup) await run(client, sql, 'cannot drop the temporary function etl schema checked values with', null);
  return { plan, decision: decide(plan, allow) };
}
