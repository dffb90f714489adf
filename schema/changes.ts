// What `etl schema` may change in a database to make it match pipeline.yaml, and which of those
// changes lose nothing. A change that loses or may reject data (a dropped column, a narrowed or
// other type change, a NOT NULL over NULLs, a rename, a replaced primary key, a foreign constraint
// dropped) carries an `allow` token: it is applied only when `--allow <token>` names it.
//
//   drop-column:<table>.<column>        DROP COLUMN (its data is lost)
//   type:<table>.<column>               a type change that is not a widening: rows whose value does
//                                       not convert are deleted first (the next run reads the table in
//                                       full: those transform can write as the new type come back)
//   not-null:<table>.<column>           SET NOT NULL over NULLs: rows holding NULL are deleted first
//   rename-column:<table>.<old>=<new>   RENAME instead of drop + add (keeps the data)
//   add-column:<table>.<column>         add a column that looks like a rename, as a new column
//   primary-key:<table>                 replace the primary key
//   drop-constraint:<table>.<name>      drop a unique or foreign key that is not pipeline.yaml's
//                                       and not named as the tool names its own
import type { SqlType } from '../model/types.ts';
import { parseSqlType } from '../model/sql-types.ts';
import { UsageError } from '../errors/etl-error.ts';

export type ChangeKind =
  | 'create_state_table'
  | 'add_state_column'
  | 'state_column_type'
  | 'drop_constraint'
  | 'retire_table'
  | 'rename_column'
  | 'add_column'
  | 'change_type'
  | 'nullability'
  | 'primary_key'
  | 'add_unique'
  | 'create_table'
  | 'add_foreign_key'
  | 'make_deferrable'
  | 'drop_column';

/** The order changes are applied in: keys exist before what references them, drops come last. */
export const APPLY_ORDER: readonly ChangeKind[] = [
  'create_state_table',
  'add_state_column',
  'drop_constraint',
  'retire_table',
  'rename_column',
  'add_column',
  'change_type',
  'state_column_type',
  'nullability',
  'primary_key',
  'add_unique',
  'create_table',
  'add_foreign_key',
  'make_deferrable',
  'drop_column',
];

export interface SchemaChange {
  readonly kind: ChangeKind;
  readonly table: string;
  readonly column: string | null;
  /** What differs and what the change does, in words. */
  readonly message: string;
  /** The statements that apply it, in order (a DELETE first when rows must go). */
  readonly sql: readonly string[];
  /** null: loses nothing, applied by default. Otherwise the `--allow` token that applies it. */
  readonly allow: string | null;
  /**
   * Tokens the change needs named with `allow` to apply: a primary key's not-null: for each of its
   * columns holding NULL (or added empty by the same plan), whose DELETE runs first. Without them the
   * key would be refused again, for those NULLs.
   */
  readonly alongWith?: readonly string[];
  /** Further tokens that also apply it (an add held back as a possible rename: dropping the old column). */
  readonly alsoAllowedBy?: readonly string[];
  /** Why it is not applied by default: what it loses or may reject. */
  readonly risk: string | null;
  /** Rows the change deletes (counted when planned). */
  readonly deletesRows: number;
  /** For a rename: the add and drop it replaces, skipped when the rename is allowed. */
  readonly replaces?: { readonly add: string; readonly drop: string };
  /** Without it the database lacks something load needs (a column). */
  readonly neededByLoad: boolean;
  /** Why it is not applied yet (even when --allow names it), and what to do first. */
  readonly blocked?: string;
}

/** A constraint pipeline.yaml adds that the rows in the database break: nothing is applied. */
export interface DataProblem {
  readonly table: string;
  readonly constraint: string;
  readonly message: string;
  /** How many rows (or groups of rows) break it. */
  readonly count: number;
  /** A few of them, as text. */
  readonly examples: readonly string[];
}

export interface SchemaPlan {
  /** Every difference as a change, in apply order. */
  readonly changes: readonly SchemaChange[];
  readonly problems: readonly DataProblem[];
  /**
   * Statements that remove what planning created in the transaction for its own checks (and the
   * changes' DELETEs use): run after the changes, before the transaction ends.
   */
  readonly cleanup: readonly string[];
}

export interface Decision {
  readonly apply: readonly SchemaChange[];
  readonly refused: readonly SchemaChange[];
  /** --allow tokens that matched no change (already applied, or a typo): reported, not fatal. */
  readonly unused: readonly string[];
  /** Changes an --allow names that cannot be applied yet (`blocked` says why): among `refused`. */
  readonly blocked: readonly SchemaChange[];
}

const TOKEN_KINDS = ['drop-column', 'type', 'not-null', 'rename-column', 'add-column', 'primary-key', 'drop-constraint'] as const;

/** Checks the shape of `--allow` values (comma-separated lists accepted); a bad one is a usage error. */
export function parseAllow(values: readonly string[]): string[] {
  const tokens = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v.length > 0);
  for (const token of tokens) {
    const kind = token.slice(0, token.indexOf(':'));
    const rest = token.slice(token.indexOf(':') + 1);
    const ok = (TOKEN_KINDS as readonly string[]).includes(kind) && rest.length > 0 && (kind === 'primary-key' || rest.includes('.'));
    if (!ok) {
      throw new UsageError('bad_allow', `--allow ${JSON.stringify(token)} is not a change name`, {
        hint: `use <kind>:<table>.<column> with kind one of ${TOKEN_KINDS.join(', ')} (primary-key:<table>; rename-column:<table>.<old>=<new>); etl schema --check lists the exact names`,
      });
    }
  }
  return tokens;
}

const columnKey = (table: string, column: string) => `${table}.${column}`;

/** Which changes are applied: the lossless ones, and the others their --allow token names. */
export function decide(plan: SchemaPlan, allow: readonly string[]): Decision {
  const allowed = new Set(allow);
  const used = new Set<string>();
  const ok = (c: SchemaChange) => {
    if (c.allow === null) return true;
    const hit = [c.allow, ...(c.alsoAllowedBy ?? [])].find((t) => allowed.has(t));
    if (hit) used.add(hit);
    return hit !== undefined;
  };
  const skipped = new Set<string>();
  for (const c of plan.changes) {
    if (c.kind === 'rename_column' && c.replaces && ok(c)) {
      skipped.add(`add:${columnKey(c.table, c.replaces.add)}`);
      skipped.add(`drop:${columnKey(c.table, c.replaces.drop)}`);
    }
  }
  const apply: SchemaChange[] = [];
  const refused: SchemaChange[] = [];
  const blocked: SchemaChange[] = [];
  for (const c of plan.changes) {
    const key = c.kind === 'add_column' ? `add:${columnKey(c.table, c.column!)}` : c.kind === 'drop_column' ? `drop:${columnKey(c.table, c.column!)}` : null;
    if (key && skipped.has(key)) continue;
    const allowed = ok(c);
    // A change that waits (for a run) is not applied; only one an --allow asked for counts as blocked.
    if (allowed && c.blocked && c.allow !== null) blocked.push(c);
    (allowed && !c.blocked ? apply : refused).push(c);
  }
  return { apply, refused: refused.filter((c) => !renameDecidedOtherwise(c, apply)), unused: allow.filter((t) => !used.has(t)), blocked };
}

/**
 * A rename whose add or drop is applied instead (add-column, drop-column): once the new column
 * exists or the old one is gone there is nothing left to rename, and load lacks nothing.
 */
function renameDecidedOtherwise(c: SchemaChange, apply: readonly SchemaChange[]): boolean {
  if (c.kind !== 'rename_column' || !c.replaces) return false;
  const { add, drop } = c.replaces;
  return apply.some((a) => a.table === c.table && ((a.kind === 'add_column' && a.column === add) || (a.kind === 'drop_column' && a.column === drop)));
}

/**
 * A type change that keeps every value as it is and accepts every value the old type accepted:
 * a longer or unbounded VARCHAR, TEXT for a string, a wider integer, a NUMERIC with at least as many
 * digits on both sides of the point, SERIAL ↔ INTEGER (only the default changes).
 */
export function isWidening(fromText: string, to: SqlType): boolean {
  const from = parseSqlType(fromText);
  if (!from) return false;
  const strings = ['varchar', 'text'];
  if (strings.includes(from.kind) && strings.includes(to.kind)) {
    if (to.kind === 'text' || (to.kind === 'varchar' && to.length === null)) return true;
    return from.kind === 'varchar' && from.length !== null && to.kind === 'varchar' && to.length !== null && to.length >= from.length;
  }
  const intWidth: Record<string, number> = { smallint: 5, integer: 10, serial: 10, bigint: 19 };
  const fromDigits = intWidth[from.kind];
  if (fromDigits !== undefined) {
    const toDigits = intWidth[to.kind];
    if (toDigits !== undefined) return toDigits >= fromDigits;
    if (to.kind === 'numeric') return to.precision === null || to.precision - (to.scale ?? 0) >= fromDigits;
    return false;
  }
  if (from.kind === 'numeric' && to.kind === 'numeric') {
    if (to.precision === null) return true;
    if (from.precision === null) return false;
    const [fs, ts] = [from.scale ?? 0, to.scale ?? 0];
    return ts >= fs && to.precision - ts >= from.precision - fs;
  }
  return false;
}
