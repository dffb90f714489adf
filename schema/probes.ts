// Questions `etl schema` asks the data before it changes a table: does it hold rows, how many NULLs
// or values a new type cannot hold, which rows a new unique constraint or foreign key would refuse.
// Reads only; every name through ident(), every value a parameter or literal().
import { parseSqlType, valueTypeOfText } from '../model/sql-types.ts';
import { compiled, ident, identList, literal, runSql, type Queryable } from './sql.ts';

const EXAMPLES = 3;

export async function hasRows(client: Queryable, table: string): Promise<boolean> {
  const r = await runSql<{ any: boolean }>(client, compiled(`SELECT EXISTS (SELECT 1 FROM ${ident(table)}) AS any`));
  return r.rows[0]!.any;
}

export async function rowCount(client: Queryable, table: string): Promise<number> {
  const r = await runSql<{ n: string }>(client, compiled(`SELECT count(*) AS n FROM ${ident(table)}`));
  return Number(r.rows[0]!.n);
}

export async function nullCount(client: Queryable, table: string, column: string): Promise<number> {
  const r = await runSql<{ n: string }>(client, compiled(`SELECT count(*) AS n FROM ${ident(table)} WHERE ${ident(column)} IS NULL`));
  return Number(r.rows[0]!.n);
}

/**
 * How the server tells whether a text is valid input for a type: PostgreSQL 16's pg_input_is_valid,
 * or, before 16 (Debian 12's 15), a PL/pgSQL function of the session's temporary schema doing the
 * same (created by `create`, dropped by `drop` before the transaction ends, so nothing stays on a
 * connection a pooler hands to another client).
 */
export interface InputCheck {
  readonly builtin: boolean;
  /** Statements that create the function (none with the builtin). */
  readonly create: readonly string[];
  /** Statements that drop it again. */
  readonly drop: readonly string[];
}

const INPUT_CHECK_FUNCTION = 'pg_temp.etl_input_is_valid';

/**
 * A cast from text is the type's input function; its errors are data exceptions (SQLSTATE class
 * 22: invalid text, out of range, bad datetime…). Any other error (a wrong type name) is raised.
 */
const CREATE_INPUT_CHECK =
  `CREATE FUNCTION ${INPUT_CHECK_FUNCTION}(value text, type_text text) RETURNS boolean LANGUAGE plpgsql AS $etl$\n` +
  `BEGIN\n  EXECUTE format('SELECT %L::%s', value, type_text);\n  RETURN true;\nEXCEPTION WHEN data_exception THEN\n  RETURN false;\nEND\n$etl$`;

export async function inputCheck(client: Queryable): Promise<InputCheck> {
  const r = await runSql<{ v: string }>(client, compiled(`SELECT current_setting('server_version_num') AS v`));
  if (Number(r.rows[0]!.v) >= 160000) return { builtin: true, create: [], drop: [] };
  return { builtin: false, create: [CREATE_INPUT_CHECK], drop: [`DROP FUNCTION ${INPUT_CHECK_FUNCTION}(text, text)`] };
}

/** The condition of rows whose value the type `typeText` (canonical spelling) cannot hold. */
export function notConvertibleCondition(column: string, typeText: string, check: InputCheck): string {
  const target = valueTypeOfText(typeText);
  const value = `${ident(column)}::text`;
  if (check.builtin) return `${ident(column)} IS NOT NULL AND NOT pg_input_is_valid(${value}, ${literal(target)})`;
  // A cast to VARCHAR(n) cuts the text where input to it fails: its input rule said in SQL (only
  // trailing spaces may go beyond n).
  const varchar = parseSqlType(target);
  if (varchar?.kind === 'varchar' && varchar.length !== null) return `${ident(column)} IS NOT NULL AND char_length(rtrim(${value}, ' ')) > ${varchar.length}`;
  return `${ident(column)} IS NOT NULL AND NOT ${INPUT_CHECK_FUNCTION}(${value}, ${literal(target)})`;
}

export async function notConvertibleCount(client: Queryable, table: string, column: string, typeText: string, check: InputCheck): Promise<number> {
  const r = await runSql<{ n: string }>(client, compiled(`SELECT count(*) AS n FROM ${ident(table)} WHERE ${notConvertibleCondition(column, typeText, check)}`));
  return Number(r.rows[0]!.n);
}

export interface Violations {
  readonly count: number;
  readonly examples: string[];
}

/** Groups of rows sharing a value of `columns` (NULLs never collide, as in a unique constraint). */
export async function duplicates(client: Queryable, table: string, columns: readonly string[]): Promise<Violations> {
  const cols = identList(columns);
  const notNull = columns.map((c) => `${ident(c)} IS NOT NULL`).join(' AND ');
  const r = await runSql<{ key: string; n: string; groups: string }>(
    client,
    compiled(
      `SELECT ROW(${cols})::text AS key, count(*) AS n, count(*) OVER () AS groups FROM ${ident(table)} ` +
        `WHERE ${notNull} GROUP BY ${cols} HAVING count(*) > 1 ORDER BY count(*) DESC, ROW(${cols})::text LIMIT $1`,
      [EXAMPLES],
    ),
  );
  return {
    count: r.rows.length ? Number(r.rows[0]!.groups) : 0,
    examples: r.rows.map((row) => `(${columns.join(', ')}) = ${row.key} in ${row.n} rows`),
  };
}

/** Rows whose `column` names no row of refTable(refColumn); `label` columns say which rows. */
export async function orphans(
  client: Queryable,
  fk: { table: string; column: string; refTable: string; refColumn: string },
  label: readonly string[],
): Promise<Violations> {
  const [t, c] = [ident(fk.table), ident(fk.column)];
  const where = `x.${c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${ident(fk.refTable)} r WHERE r.${ident(fk.refColumn)} = x.${c})`;
  const count = await runSql<{ n: string }>(client, compiled(`SELECT count(*) AS n FROM ${t} x WHERE ${where}`));
  const shown = label.length > 0 ? label : [fk.column];
  const rows = await runSql<{ who: string; value: string }>(
    client,
    compiled(`SELECT ROW(${shown.map((l) => `x.${ident(l)}`).join(', ')})::text AS who, x.${c}::text AS value FROM ${t} x WHERE ${where} ORDER BY 1 LIMIT $1`, [EXAMPLES]),
  );
  return {
    count: Number(count.rows[0]!.n),
    examples: rows.rows.map((row) => `(${shown.join(', ')}) = ${row.who}: ${fk.column} = ${JSON.stringify(row.value)}`),
  };
}

/**
 * Rows of other tables whose foreign key names a row of `table` matching `condition` (rows a
 * DELETE with that condition would leave dangling), per referencing table: `{ users_targets: 3 }`.
 */
export async function referencingRows(client: Queryable, table: string, condition: string): Promise<Record<string, number>> {
  const keys = await runSql<{ child: string; column: string; parent_column: string }>(
    client,
    compiled(
      `SELECT c.relname AS child, a.attname AS column, af.attname AS parent_column
         FROM pg_constraint con
         JOIN pg_class c ON c.oid = con.conrelid
         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
         JOIN pg_attribute af ON af.attrelid = con.confrelid AND af.attnum = con.confkey[1]
        WHERE con.contype = 'f' AND con.confrelid = to_regclass($1) AND cardinality(con.conkey) = 1
        ORDER BY 1, 2`,
      [ident(table)],
    ),
  );
  const out: Record<string, number> = {};
  for (const k of keys.rows) {
    const r = await runSql<{ n: string }>(
      client,
      compiled(`SELECT count(*) AS n FROM ${ident(k.child)} x WHERE x.${ident(k.column)} IN (SELECT p.${ident(k.parent_column)} FROM ${ident(table)} p WHERE ${condition})`),
    );
    const n = Number(r.rows[0]!.n);
    if (n > 0) out[k.child] = (out[k.child] ?? 0) + n;
  }
  return out;
}
