// `etl schema --check`: the live database against pipeline.yaml, table by table. Each difference
// carries the DDL that would make the database match the YAML. Nothing here changes the database,
// and a fix that would drop something (an extra column, a different key) is only a `--` comment:
// dropping data is a person's decision.
import type pg from 'pg';
import type { PipelineModel, TableModel } from '../model/types.ts';
import { valueTypeOfText } from '../model/sql-types.ts';
import {
  addColumnSql,
  addForeignKeySql,
  addPrimaryKeySql,
  addUniqueSql,
  alterColumnTypeSql,
  createTableSql,
  dropColumnComment,
  dropConstraintComment,
  makeDeferrableSql,
  setNullabilitySql,
} from './ddl.ts';
import { ident } from './sql.ts';
import { readTables, type LiveTable } from './catalog.ts';
import { addStateColumnSql, contributionsTableName, createStateTableSql, stateTables } from './state-tables.ts';

export type DriftKind =
  | 'missing_table'
  | 'missing_column'
  | 'extra_column'
  | 'type'
  | 'nullability'
  | 'primary_key'
  | 'missing_unique'
  | 'extra_unique'
  | 'missing_foreign_key'
  | 'extra_foreign_key'
  | 'foreign_key_not_deferrable'
  | 'missing_state_column'
  | 'state_column_type';

export interface DriftFinding {
  readonly table: string;
  readonly column: string | null;
  readonly kind: DriftKind;
  /** What pipeline.yaml says (a type, `NOT NULL`, a column list …); null when it says nothing. */
  readonly expected: string | null;
  /** What the database has; null when it has nothing. */
  readonly actual: string | null;
  readonly message: string;
  /** Statements that make the database match the YAML, in order; a drop is a `--` comment only. */
  readonly fix: readonly string[];
  /** The existing constraint the finding is about (extra keys, a primary key to replace, a foreign key to make deferrable). */
  readonly constraint?: string;
}

export interface DriftReport {
  /** True when the database matches pipeline.yaml (extra columns included: they are drift too). */
  readonly clean: boolean;
  /** Tables compared: the pipeline's, then the tool's state tables. */
  readonly tablesChecked: number;
  readonly findings: readonly DriftFinding[];
}

const cols = (c: readonly string[]) => `(${c.join(', ')})`;
const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x) => b.includes(x));

export async function checkDrift(client: pg.Client, model: PipelineModel): Promise<DriftReport> {
  const state = stateTables(model);
  const names = [...model.loadOrder, ...state.map((t) => t.name)];
  const live = await readTables(client, names);
  const findings: DriftFinding[] = [];
  for (const name of model.loadOrder) findings.push(...compareTable(model.tables.get(name)!, live.get(name) ?? null));
  for (const t of state) {
    const l = live.get(t.name);
    const base = { table: t.name, expected: null, actual: null };
    if (!l) {
      findings.push({ ...base, column: null, kind: 'missing_table', expected: 'table', message: `state table "${t.name}" is missing`, fix: [createStateTableSql(t)] });
      continue;
    }
    for (const c of t.columns) {
      if (l.columns.some((x) => x.name === c.name)) continue;
      findings.push({
        ...base,
        column: c.name,
        kind: 'missing_state_column',
        expected: c.type,
        message: `state table "${t.name}" lacks column "${c.name}" (added by this version of etl)`,
        fix: [addStateColumnSql(t, c)],
      });
    }
  }
  findings.push(...contributionTypes(model, live));
  return { clean: findings.length === 0, tablesChecked: names.length, findings };
}

/**
 * A dedupe table's contributions hold its staged columns with the types the table has: one whose
 * type differs (the table's column retyped by an etl that left them as they were) would store every
 * contribution as its own type (a TIMESTAMP cut to a DATE) and recompute the keys from those values.
 * Compared with the table as it is, not with pipeline.yaml: a type change of the table that is not
 * applied yet (no --allow) keeps its contributions' type too.
 */
function contributionTypes(model: PipelineModel, live: ReadonlyMap<string, LiveTable>): DriftFinding[] {
  const out: DriftFinding[] = [];
  for (const t of model.loadOrder.map((n) => model.tables.get(n)!).filter((x) => x.strategy === 'dedupe')) {
    const contrib = contributionsTableName(t.name);
    for (const c of t.stagedColumns) {
      const table = live.get(t.name)?.columns.find((x) => x.name === c.name);
      const state = live.get(contrib)?.columns.find((x) => x.name === c.name);
      const type = table === undefined ? undefined : valueTypeOfText(table.type);
      if (!table || !state || type === undefined || state.type === type) continue;
      out.push({
        table: contrib,
        column: c.name,
        kind: 'state_column_type',
        expected: type,
        actual: state.type,
        message: `state table "${contrib}" holds "${c.name}" as ${state.rawType}, "${t.name}" as ${table.rawType}: its contributions take the table's type`,
        fix: [`ALTER TABLE ${ident(contrib)} ALTER COLUMN ${ident(c.name)} TYPE ${type} USING ${ident(c.name)}::${type}`],
      });
    }
  }
  return out;
}

type Add = (f: Omit<DriftFinding, 'table'>) => void;

/** Differences between one table of the model and its live shape (null: the table does not exist). */
function compareTable(t: TableModel, live: LiveTable | null): DriftFinding[] {
  const out: DriftFinding[] = [];
  const add: Add = (f) => out.push({ table: t.name, ...f });
  if (live === null) {
    add({ column: null, kind: 'missing_table', expected: 'table', actual: null, message: `table "${t.name}" is missing`, fix: [createTableSql(t)] });
    return out;
  }
  compareColumns(t, live, add);
  comparePrimaryKey(t, live, add);
  compareUniques(t, live, add);
  compareForeignKeys(t, live, add);
  return out;
}

function compareColumns(t: TableModel, live: LiveTable, add: Add): void {
  const liveColumns = new Map(live.columns.map((c) => [c.name, c]));
  for (const c of t.columns) {
    const l = liveColumns.get(c.name);
    if (!l) {
      add({
        column: c.name,
        kind: 'missing_column',
        expected: `${c.sqlTypeText}${c.nullable ? '' : ' NOT NULL'}`,
        actual: null,
        message: `column "${t.name}"."${c.name}" is missing`,
        fix: [addColumnSql(t, c)],
      });
      continue;
    }
    if (l.type !== c.sqlTypeText) {
      const fix = alterColumnTypeSql(t, c);
      // A SERIAL that should not be one keeps its sequence default until told otherwise.
      if (l.type === 'SERIAL') fix.unshift(`ALTER TABLE ${ident(t.name)} ALTER COLUMN ${ident(c.name)} DROP DEFAULT`);
      add({
        column: c.name,
        kind: 'type',
        expected: c.sqlTypeText,
        actual: l.type,
        message: `column "${t.name}"."${c.name}" is ${l.rawType}${l.type === 'SERIAL' ? ' with a sequence default' : ''}, pipeline.yaml says ${c.sqlTypeText}`,
        fix,
      });
    }
    if (l.nullable !== c.nullable) {
      add({
        column: c.name,
        kind: 'nullability',
        expected: c.nullable ? 'NULL' : 'NOT NULL',
        actual: l.nullable ? 'NULL' : 'NOT NULL',
        message: `column "${t.name}"."${c.name}" is ${l.nullable ? 'nullable' : 'NOT NULL'}, pipeline.yaml says ${c.nullable ? 'nullable' : 'NOT NULL'}`,
        fix: [setNullabilitySql(t, c)],
      });
    }
  }
  const modelColumns = new Set(t.columns.map((c) => c.name));
  for (const l of live.columns) {
    if (modelColumns.has(l.name)) continue;
    add({
      column: l.name,
      kind: 'extra_column',
      expected: null,
      actual: l.type,
      message: `column "${t.name}"."${l.name}" (${l.rawType}) is not in pipeline.yaml (kept; load leaves it ${l.nullable ? 'NULL' : 'as it is'})`,
      fix: [dropColumnComment(t.name, l.name)],
    });
  }
}

/** Primary key: compared as a set of columns; the name is PostgreSQL's business. */
function comparePrimaryKey(t: TableModel, live: LiveTable, add: Add): void {
  const livePk = live.primaryKey;
  const named = livePk ? { constraint: livePk.name } : {};
  if (t.primaryKey.length > 0 && !(livePk && sameSet(livePk.columns, t.primaryKey))) {
    add({
      column: null,
      kind: 'primary_key',
      expected: cols(t.primaryKey),
      actual: livePk ? cols(livePk.columns) : null,
      message: livePk
        ? `primary key of "${t.name}" is ${cols(livePk.columns)}, pipeline.yaml says ${cols(t.primaryKey)}`
        : `table "${t.name}" has no primary key, pipeline.yaml says ${cols(t.primaryKey)}`,
      fix: [...(livePk ? [dropConstraintComment(t.name, livePk.name)] : []), addPrimaryKeySql(t)],
      ...named,
    });
  } else if (t.primaryKey.length === 0 && livePk) {
    add({
      column: null,
      kind: 'primary_key',
      expected: null,
      actual: cols(livePk.columns),
      message: `table "${t.name}" has primary key ${cols(livePk.columns)}, pipeline.yaml declares none`,
      fix: [dropConstraintComment(t.name, livePk.name)],
      ...named,
    });
  }
}

function compareUniques(t: TableModel, live: LiveTable, add: Add): void {
  // The live primary key stands for a unique constraint only while pipeline.yaml keeps it: a primary
  // key dropped or moved elsewhere takes the uniqueness of its columns with it.
  const keptPk = live.primaryKey && sameSet(live.primaryKey.columns, t.primaryKey) ? live.primaryKey : null;
  for (const u of t.uniqueConstraints) {
    if (live.uniques.some((l) => sameSet(l.columns, u)) || (keptPk && sameSet(keptPk.columns, u))) continue;
    add({
      column: null,
      kind: 'missing_unique',
      expected: cols(u),
      actual: null,
      message: `unique constraint ${cols(u)} of "${t.name}" is missing`,
      fix: [addUniqueSql(t, u)],
    });
  }
  for (const l of live.uniques) {
    if (t.uniqueConstraints.some((u) => sameSet(l.columns, u))) continue;
    add({
      column: null,
      kind: 'extra_unique',
      expected: null,
      actual: cols(l.columns),
      message: `unique constraint or index "${l.name}" ${cols(l.columns)} of "${t.name}" is not in pipeline.yaml (it may refuse rows the YAML allows)`,
      fix: [`${dropConstraintComment(t.name, l.name)}   (or DROP INDEX ${ident(l.name)} if it is a bare index)`],
      constraint: l.name,
    });
  }
}

function compareForeignKeys(t: TableModel, live: LiveTable, add: Add): void {
  const wanted = t.columns.filter((c) => c.foreignKey !== null);
  const matches = (c: (typeof wanted)[number], l: LiveTable['foreignKeys'][number]) =>
    sameSet(l.columns, [c.name]) && l.refTable === c.foreignKey!.table && sameSet(l.refColumns, [c.foreignKey!.column]);
  for (const c of wanted) {
    const l = live.foreignKeys.find((x) => matches(c, x));
    if (l && (!l.deferrable || l.initiallyDeferred)) {
      add({
        column: c.name,
        kind: 'foreign_key_not_deferrable',
        expected: 'DEFERRABLE INITIALLY IMMEDIATE',
        actual: l.deferrable ? 'DEFERRABLE INITIALLY DEFERRED' : 'NOT DEFERRABLE',
        message: `foreign key "${l.name}" of "${t.name}" is ${l.deferrable ? 'initially deferred' : 'not deferrable'}; the tool's are DEFERRABLE INITIALLY IMMEDIATE (load defers them in its transaction)`,
        fix: [makeDeferrableSql(t.name, l.name)],
        constraint: l.name,
      });
    }
    if (l) continue;
    add({
      column: c.name,
      kind: 'missing_foreign_key',
      expected: `${c.foreignKey!.table}(${c.foreignKey!.column})`,
      actual: null,
      message: `foreign key "${t.name}"."${c.name}" → ${c.foreignKey!.table}(${c.foreignKey!.column}) is missing`,
      fix: [addForeignKeySql(t, c)],
    });
  }
  for (const l of live.foreignKeys) {
    if (wanted.some((c) => matches(c, l))) continue;
    add({
      column: l.columns.length === 1 ? l.columns[0]! : null,
      kind: 'extra_foreign_key',
      expected: null,
      actual: `${cols(l.columns)} → ${l.refTable}${cols(l.refColumns)}`,
      message: `foreign key "${l.name}" ${cols(l.columns)} → ${l.refTable}${cols(l.refColumns)} of "${t.name}" is not in pipeline.yaml`,
      fix: [dropConstraintComment(t.name, l.name)],
      constraint: l.name,
    });
  }
}
