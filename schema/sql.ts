// SQL text and values never mix. An identifier becomes SQL only through ident(), which quotes it
// (doubling any quote inside), so `order` or `a"b` are ordinary names; builders take SqlIdent, not
// string, so an unquoted name does not compile. Values go into the statement's own parameters array
// as $1, $2, …: every statement is a CompiledQuery built by compiled(sql, parameters), and runSql is
// the one way to run it, so no caller passes values by position to SQL it did not write.
import pg from 'pg';
import { withEndReason } from '../errors/connection-ended.ts';

declare const sqlIdentBrand: unique symbol;
/** A quoted identifier (or a comma-separated list of them): safe to splice into SQL text. */
export type SqlIdent = string & { readonly [sqlIdentBrand]: true };

/** `order` → `"order"`, `a"b` → `"a""b"`. */
export function ident(name: string): SqlIdent {
  if (name.length === 0) throw new TypeError('an SQL identifier cannot be empty');
  if (name.includes('\u0000')) throw new TypeError('an SQL identifier cannot hold a NUL character');
  return pg.escapeIdentifier(name) as SqlIdent;
}

/** `"schema"."name"`. */
export function qualified(schema: string, name: string): SqlIdent {
  return `${ident(schema)}.${ident(name)}` as SqlIdent;
}

/** `"a", "b", "c"`: column lists. */
export function identList(names: readonly string[]): SqlIdent {
  return names.map(ident).join(', ') as SqlIdent;
}

/** A string value as a quoted SQL literal; only for DDL, where PostgreSQL accepts no parameters. */
export function literal(value: string): string {
  return pg.escapeLiteral(value);
}

/** A statement with its values: the only shape SQL travels in (built by compiled()). */
export interface CompiledQuery {
  readonly sql: string;
  readonly parameters: readonly unknown[];
}

/** A statement and its values, frozen: the only shape SQL travels in. */
export function compiled(sql: string, parameters: readonly unknown[] = []): CompiledQuery {
  return Object.freeze({ sql, parameters: Object.freeze([...parameters]) });
}

/** Anything that runs a query: a pg Client or PoolClient. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** Runs a compiled statement with its own parameters. `R`: the row shape the statement selects. */
export function runSql<R extends pg.QueryResultRow = any>(client: Queryable, q: CompiledQuery): Promise<pg.QueryResult<R>> {
  // A connection the server ended between two statements fails the next with the server's reason.
  return client.query<R>(q.sql, [...q.parameters]).catch((error: unknown) => Promise.reject(withEndReason(client, error)));
}

/** The transaction statements, run like any other statement. */
export const BEGIN = compiled('BEGIN');
export const COMMIT = compiled('COMMIT');
export const ROLLBACK = compiled('ROLLBACK');
/** Foreign keys checked at COMMIT (they are DEFERRABLE; one re-added in the transaction starts immediate). */
export const DEFER_ALL = compiled('SET CONSTRAINTS ALL DEFERRED');

/** The three statements of one savepoint (a name written in our source). */
export function savepoint(name: string): { readonly set: CompiledQuery; readonly rollback: CompiledQuery; readonly release: CompiledQuery } {
  const n = ident(name);
  return Object.freeze({ set: compiled(`SAVEPOINT ${n}`), rollback: compiled(`ROLLBACK TO SAVEPOINT ${n}`), release: compiled(`RELEASE SAVEPOINT ${n}`) });
}
