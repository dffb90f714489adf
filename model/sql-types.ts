// The SQL types pipeline.yaml may name: parsing the YAML spelling, the canonical DDL spelling, and
// the reading of PostgreSQL's own spelling (format_type) back into it, so drift compares like with like.
import type { SqlType } from './types.ts';

/** The spellings `sql_type:` accepts, as listed in error messages. */
export const KNOWN_SQL_TYPES: readonly string[] = Object.freeze([
  'VARCHAR',
  'VARCHAR(n)',
  'TEXT',
  'SMALLINT',
  'INTEGER',
  'BIGINT',
  'SERIAL',
  'NUMERIC',
  'NUMERIC(p,s)',
  'BOOLEAN',
  'TIMESTAMP',
  'DATE',
  'JSONB',
]);

// PostgreSQL's limits: varchar(n) accepts 1..10485760, numeric precision 1..1000.
const MAX_VARCHAR = 10_485_760;
const MAX_NUMERIC_PRECISION = 1000;

const SIMPLE: Readonly<Record<string, SqlType>> = {
  TEXT: { kind: 'text' },
  SMALLINT: { kind: 'smallint' },
  INT2: { kind: 'smallint' },
  INTEGER: { kind: 'integer' },
  INT: { kind: 'integer' },
  INT4: { kind: 'integer' },
  BIGINT: { kind: 'bigint' },
  INT8: { kind: 'bigint' },
  SERIAL: { kind: 'serial' },
  BOOLEAN: { kind: 'boolean' },
  BOOL: { kind: 'boolean' },
  TIMESTAMP: { kind: 'timestamp' },
  'TIMESTAMP WITHOUT TIME ZONE': { kind: 'timestamp' },
  DATE: { kind: 'date' },
  JSONB: { kind: 'jsonb' },
};

/** `varchar ( 10 )` → `VARCHAR(10)`: case and spaces as written do not matter. */
function normalized(text: string): string {
  return text.trim().replace(/\s+/g, ' ').replace(/\s*([(),])\s*/g, '$1').toUpperCase();
}

/**
 * Parses a `sql_type:` value (case and spacing are free). Returns null for an unknown type or
 * an out-of-range length, so the caller can say which types exist (or, sqlTypeRangeProblem, the range).
 */
export function parseSqlType(text: string): SqlType | null {
  const t = normalized(text);
  const simple = SIMPLE[t];
  if (simple) return simple;
  const varchar = /^(?:VARCHAR|CHARACTER VARYING)(?:\((\d+)\))?$/.exec(t);
  if (varchar) {
    if (varchar[1] === undefined) return { kind: 'varchar', length: null };
    const length = Number(varchar[1]);
    return length >= 1 && length <= MAX_VARCHAR ? { kind: 'varchar', length } : null;
  }
  const numeric = /^(?:NUMERIC|DECIMAL)(?:\((\d+)(?:,(\d+))?\))?$/.exec(t);
  if (numeric) {
    if (numeric[1] === undefined) return { kind: 'numeric', precision: null, scale: null };
    const precision = Number(numeric[1]);
    const scale = numeric[2] === undefined ? 0 : Number(numeric[2]);
    if (precision < 1 || precision > MAX_NUMERIC_PRECISION || scale > precision) return null;
    return { kind: 'numeric', precision, scale };
  }
  return null;
}

/**
 * Why a type written in a form etl knows (VARCHAR(n), NUMERIC(p,s)) is refused anyway: its numbers
 * are beyond what PostgreSQL takes. Null for any other text (parseSqlType says whether it is known).
 */
export function sqlTypeRangeProblem(text: string): string | null {
  const t = normalized(text);
  if (/^(?:VARCHAR|CHARACTER VARYING)\(\d+\)$/.test(t)) return `VARCHAR(n) takes n from 1 to ${MAX_VARCHAR} (PostgreSQL's limit)`;
  if (/^(?:NUMERIC|DECIMAL)\(\d+(?:,\d+)?\)$/.test(t)) return `NUMERIC(p,s) takes p from 1 to ${MAX_NUMERIC_PRECISION} and s from 0 to p`;
  return null;
}

/** The canonical DDL spelling: `VARCHAR(255)`, `TIMESTAMP`, `NUMERIC(10,2)`. */
export function sqlTypeText(type: SqlType): string {
  switch (type.kind) {
    case 'varchar':
      return type.length === null ? 'VARCHAR' : `VARCHAR(${type.length})`;
    case 'numeric':
      if (type.precision === null) return 'NUMERIC';
      return `NUMERIC(${type.precision},${type.scale ?? 0})`;
    case 'text':
    case 'smallint':
    case 'integer':
    case 'bigint':
    case 'serial':
    case 'boolean':
    case 'timestamp':
    case 'date':
    case 'jsonb':
      return type.kind.toUpperCase();
  }
}

/** The type a column's values have: its DDL spelling, a SERIAL's as the INTEGER it is (its sequence is only a default). */
export function valueTypeText(type: SqlType): string {
  return type.kind === 'serial' ? 'INTEGER' : sqlTypeText(type);
}

/** valueTypeText of a type given by its canonical spelling (sqlTypeText's, or a live column's as canonicalCatalogType reads it). */
export function valueTypeOfText(typeText: string): string {
  return typeText === 'SERIAL' ? 'INTEGER' : typeText;
}

/**
 * The type a referencing column must be compatible with. PostgreSQL accepts a foreign key between
 * varchar(n) and text, or between integer widths; a SERIAL is referenced by an INTEGER column.
 */
export function typeFamily(type: SqlType): string {
  switch (type.kind) {
    case 'varchar':
    case 'text':
      return 'string';
    case 'smallint':
    case 'integer':
    case 'bigint':
    case 'serial':
      return 'integer';
    default:
      return type.kind;
  }
}

/**
 * Reads PostgreSQL's `format_type()` text (plus the column default, which is how a SERIAL shows
 * in the catalogs) into the canonical spelling, so `character varying(255)` ≡ `VARCHAR(255)` and
 * `integer DEFAULT nextval(…)` ≡ `SERIAL`. An unknown type comes back upper-cased, never equal.
 */
export function canonicalCatalogType(formatType: string, columnDefault: string | null): string {
  const t = formatType.trim().toLowerCase();
  const serialDefault = columnDefault !== null && /^nextval\(/i.test(columnDefault.trim());
  if (t === 'integer' && serialDefault) return 'SERIAL';
  const varchar = /^character varying(?:\((\d+)\))?$/.exec(t);
  if (varchar) return varchar[1] === undefined ? 'VARCHAR' : `VARCHAR(${varchar[1]})`;
  const numeric = /^numeric(?:\((\d+),(\d+)\))?$/.exec(t);
  if (numeric) return numeric[1] === undefined ? 'NUMERIC' : `NUMERIC(${numeric[1]},${numeric[2]})`;
  const names: Record<string, string> = {
    text: 'TEXT',
    smallint: 'SMALLINT',
    integer: 'INTEGER',
    bigint: 'BIGINT',
    boolean: 'BOOLEAN',
    'timestamp without time zone': 'TIMESTAMP',
    date: 'DATE',
    jsonb: 'JSONB',
  };
  return names[t] ?? t.toUpperCase();
}
