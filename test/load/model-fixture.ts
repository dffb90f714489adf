// A small model with every merge kind and foreign-key policy, shaped like the Wappizy tables:
//   companies, users (company_id set_null, a column named `order`), messages (two rejecting
//   references), user_companies (explode, delete-and-insert by user_id), tags (explode, upsert on
//   a unique constraint), logbook (dedupe with a SERIAL id, like users_logbook), pairs (dedupe on a
//   pair, like menu_recipes). Written as pipeline.yaml and resolved by the real resolver; tables are
//   listed parents first, and the foreign keys then the file order give the load order.
import pg from 'pg';
import { pipelineFromYaml } from '../harness/staged-run.ts';
import type { PipelineModel } from '../../model/types.ts';

/** created_at and updated_at, NOT NULL, as additional YAML columns. */
export const TIMESTAMPS = `
      - name: created_at
        sql_type: TIMESTAMP
        nullable: false
      - name: updated_at
        sql_type: TIMESTAMP
        nullable: false`;

export function fixtureYaml(o: { truncateCompanies?: boolean } = {}): string {
  const truncate = o.truncateCompanies ? '\n    force_reimport: true\n    truncate_before_import: true' : '';
  return `tables:
  companies:
    include_base: true
    additional_columns:
      - name: name
        sql_type: VARCHAR(5)
        nullable: false${truncate}
  users:
    include_base: true
    additional_columns:
      - name: name
        sql_type: VARCHAR
        nullable: false
      - name: company_id
        sql_type: VARCHAR
        foreign_key: companies(id)
        on_missing: set_null
      - name: order
        sql_type: SMALLINT
  messages:
    include_base: true
    additional_columns:
      - name: sender_id
        sql_type: VARCHAR
        foreign_key: users(id)
      - name: receiver_id
        sql_type: VARCHAR
        foreign_key: users(id)
      - name: content
        sql_type: TEXT
        nullable: false
  user_companies:
    mongo_collection: users
    strategy: explode
    parent_column: user_id
    merge: delete_and_insert
    arrays:
      - field: companies
        item_column: company_id
    columns:
      - name: user_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: users(id)
      - name: company_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: companies(id)${TIMESTAMPS}
    unique_constraints:
      - [user_id, company_id]
  tags:
    mongo_collection: users
    strategy: explode
    parent_column: user_id
    merge: upsert
    arrays:
      - field: tags
        item_column: tag
    columns:
      - name: user_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: users(id)
      - name: tag
        sql_type: VARCHAR
        nullable: false${TIMESTAMPS}
    unique_constraints:
      - [user_id, tag]
  logbook:
    strategy: dedupe
    dedupe_key: [user_id, day]
    latest_by: updated_at
    columns:
      - name: id
        sql_type: SERIAL
        primary_key: true
      - name: user_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: users(id)
      - name: day
        sql_type: DATE
        nullable: false${TIMESTAMPS}
    unique_constraints:
      - [user_id, day]
  pairs:
    strategy: dedupe
    dedupe_key: [user_id, company_id]
    latest_by: updated_at
    columns:
      - name: user_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: users(id)
      - name: company_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: companies(id)${TIMESTAMPS}
    unique_constraints:
      - [user_id, company_id]
`;
}

export function fixtureModel(o: { truncateCompanies?: boolean } = {}): PipelineModel {
  return pipelineFromYaml(fixtureYaml(o), 'test/load/model-fixture.ts');
}

/**
 * A parent chain as pipeline.yaml writes it: plans ← days (plan_id) ← meals (day_id; with
 * `mealsPlan`, also plan_id, set NULL when missing). `meals: false` stops at days.
 */
export function chainModel(o: { meals: boolean; mealsPlan?: boolean }): PipelineModel {
  const plan = o.mealsPlan ? '\n      - name: plan_id\n        sql_type: VARCHAR\n        foreign_key: plans(id)\n        on_missing: set_null' : '';
  const meals = o.meals ? `\n  meals:\n    include_base: true\n    additional_columns:\n      - name: day_id\n        sql_type: VARCHAR\n        foreign_key: days(id)${plan}` : '';
  return pipelineFromYaml(`tables:
  plans:
    include_base: true
  days:
    include_base: true
    additional_columns:
      - name: plan_id
        sql_type: VARCHAR
        foreign_key: plans(id)${meals}
`);
}

export const ts = (s: string): string => `2024-03-0${s}.000`;

/** Rows of the fixture whose references are missing: user u3's company c9 (set NULL, users.rejects.ndjson) and message m2's recipient u9 (rejected, messages.rejects.ndjson). */
export const danglingReferences = () => ({
  companies: { rows: [['c1', ts('1 10:00:00'), ts('1 10:00:00'), 'Acme']] },
  users: { rows: [['u1', ts('1 10:00:00'), ts('1 10:00:00'), 'Ann', 'c1', '1'], ['u3', ts('1 10:00:00'), ts('1 10:00:00'), 'Cy', 'c9', null]] },
  messages: { rows: [['m2', ts('1 10:00:00'), ts('1 10:00:00'), 'u1', 'u9', 'to a deleted user']] },
});

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
