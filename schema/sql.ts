// SQL text and values never mix. An identifier becomes SQL only through ident(), which quotes it
// (doubling any quote inside), so `order` or `a"b` are ordinary names; builders take SqlIdent, not
// string, so an unquoted name does not compile. Values go into a parameters array as $1, $2, ….
import pg from 'pg';

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

/** What a builder produces, ready for `client.query(sql, parameters)`. */
export interface CompiledQuery {
  readonly sql: string;
  readonly parameters: readonly unknown[];
}

/**
 * A tiny query builder: `sql` appends trusted SQL text (keywords written in our source), `id`
 * appends quoted identifiers, `value` appends a parameter placeholder and keeps the value aside.
 *
 *   new SqlBuilder().sql('SELECT * FROM ').id(ident('users')).sql(' WHERE ').id(ident('email')).sql(' = ').value(email).build()
 */
export class SqlBuilder {
  readonly #parts: string[] = [];
  readonly #parameters: unknown[] = [];

  /** Trusted SQL text. Never pass user data or names here: use id() and value(). */
  sql(text: string): this {
    this.#parts.push(text);
    return this;
  }

  id(name: SqlIdent): this {
    this.#parts.push(name);
    return this;
  }

  /** A value as `$n`; the same value passed twice takes two parameters. */
  value(v: unknown): this {
    this.#parameters.push(v);
    this.#parts.push(`$${this.#parameters.length}`);
    return this;
  }

  /** `$1, $2, …` for a list of values. */
  values(vs: readonly unknown[]): this {
    vs.forEach((v, i) => {
      if (i > 0) this.#parts.push(', ');
      this.value(v);
    });
    return this;
  }

  build(): CompiledQuery {
    return Object.freeze({ sql: this.#parts.join(''), parameters: Object.freeze([...this.#parameters]) });
  }
}

/** A statement and its values, frozen: the only shape SQL travels in. */
export function compiled(sql: string, parameters: readonly unknown[] = []): CompiledQuery {
  return Object.freeze({ sql, parameters: Object.freeze([...parameters]) });
}

/** Anything that runs a query: a pg Client or PoolClient. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<pg.QueryResult>;
}

/** Runs a compiled statement with its own parameters. */
export function runSql(client: Queryable, q: CompiledQuery): Promise<pg.QueryResult> {
  return client.query(q.sql, [...q.parameters]);
}
