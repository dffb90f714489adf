// A small model with every merge kind and foreign-key policy, shaped like the Wappizy tables:
//   companies, users (company_id set_null, a column named `order`), messages (two rejecting
//   references), user_companies (explode, delete-and-insert by user_id), tags (explode, upsert on
//   a unique constraint), logbook (dedupe with a SERIAL id, like users_logbook), pairs (dedupe on a
//   pair, like menu_recipes).
import pg from 'pg';
import { col, pipelineModel, table, timestamps, T } from './staged-run.ts';
import type { PipelineModel } from '../../model/types.ts';

export function fixtureModel(o: { truncateCompanies?: boolean } = {}): PipelineModel {
  return pipelineModel([
    table({
      name: 'companies',
      columns: [col('id', { pk: true }), ...timestamps(), col('name', { type: T.varchar(5), nullable: false })],
      forceReimport: o.truncateCompanies ?? false,
      truncateBeforeImport: o.truncateCompanies ?? false,
    }),
    table({
      name: 'users',
      columns: [
        col('id', { pk: true }),
        ...timestamps(),
        col('name', { nullable: false }),
        col('company_id', { fk: 'companies(id)', onMissing: 'set_null' }),
        col('order', { type: T.smallint() }),
      ],
    }),
    table({
      name: 'messages',
      columns: [col('id', { pk: true }), ...timestamps(), col('sender_id', { fk: 'users(id)' }), col('receiver_id', { fk: 'users(id)' }), col('content', { type: T.text(), nullable: false })],
    }),
    table({
      name: 'user_companies',
      collection: 'users',
      strategy: 'explode',
      parent: 'user_id',
      merge: 'delete_and_insert',
      unique: [['user_id', 'company_id']],
      columns: [col('user_id', { nullable: false, fk: 'users(id)' }), col('company_id', { nullable: false, fk: 'companies(id)' }), ...timestamps()],
    }),
    table({
      name: 'tags',
      collection: 'users',
      strategy: 'explode',
      parent: 'user_id',
      merge: 'upsert',
      unique: [['user_id', 'tag']],
      columns: [col('user_id', { nullable: false, fk: 'users(id)' }), col('tag', { nullable: false }), ...timestamps()],
    }),
    table({
      name: 'logbook',
      strategy: 'dedupe',
      dedupeKey: ['user_id', 'day'],
      latestBy: 'updated_at',
      unique: [['user_id', 'day']],
      columns: [col('id', { type: T.serial(), pk: true }), col('user_id', { nullable: false, fk: 'users(id)' }), col('day', { type: T.date(), nullable: false }), ...timestamps()],
    }),
    table({
      name: 'pairs',
      strategy: 'dedupe',
      dedupeKey: ['user_id', 'company_id'],
      latestBy: 'updated_at',
      unique: [['user_id', 'company_id']],
      columns: [col('user_id', { nullable: false, fk: 'users(id)' }), col('company_id', { nullable: false, fk: 'companies(id)' }), ...timestamps()],
    }),
  ]);
}

export const ts = (s: string): string => `2024-03-0${s}.000`;

/** md5 of every row of every table (and the state tables' data that must not move on failure). */
export async function checksums(url: string, tables: readonly string[]): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, string> = {};
    for (const t of tables) {
      const exists = await client.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [pg.escapeIdentifier(t)]);
      if (!exists.rows[0].ok) {
        out[t] = '(absent)';
        continue;
      }
      const r = await client.query(`SELECT count(*)::int AS n, coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS h FROM ${pg.escapeIdentifier(t)} AS x`);
      out[t] = `${r.rows[0].n}:${r.rows[0].h}`;
    }
    return out;
  } finally {
    await client.end();
  }
}

export async function query<R extends pg.QueryResultRow = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

export function postgresConfig(url: string) {
  return { connectionString: url, host: '', port: 0, database: '', user: '', password: null } as const;
}
