// Reads of etl's state tables (schema/state-tables.ts) by the commands that do not write them:
// extract (where each table's next read starts), `etl status` and the report. Load writes them, in
// its own transaction (load/ledger.ts). An absent state table means nothing was ever loaded. Which
// state tables exist is asked of the catalog once (StateReads.open), whatever the command reads.
import { existingTablesWithColumn } from './catalog.ts';
import { compiled, ident, runSql, type CompiledQuery, type Queryable } from './sql.ts';
import { CLAIMS_TABLE, GONE_TABLE, PENDING_TABLE, RUNS_TABLE, WATERMARKS_TABLE } from './state-tables.ts';

export interface WatermarkRow {
  readonly table: string;
  readonly watermark: Date;
  readonly runId: string;
  readonly updatedAt: Date;
  /** The mapping fingerprint stored with it; null when none (or a database not migrated yet). */
  readonly fingerprint: string | null;
}

export interface LastRunRow {
  readonly table: string;
  readonly runId: string;
  readonly loadedAt: Date;
  readonly pipelineSha256: string;
  readonly summary: Record<string, unknown>;
  /** How many runs were applied to the table. */
  readonly applied: number;
}

const watermarks = ident(WATERMARKS_TABLE);
const runs = ident(RUNS_TABLE);

/** `WHERE table_name = ANY($1)` for a subset, nothing for every table. */
const tableFilter = (tables: readonly string[] | null): { where: string; parameters: unknown[] } =>
  tables ? { where: ` WHERE table_name = ANY($1::text[])`, parameters: [tables] } : { where: '', parameters: [] };

function watermarksSql(tables: readonly string[] | null, withFingerprint: boolean): CompiledQuery {
  const f = tableFilter(tables);
  return compiled(
    `SELECT table_name, watermark, run_id, updated_at, ${withFingerprint ? 'fingerprint' : 'NULL::text'} AS fingerprint FROM ${watermarks}${f.where}`,
    f.parameters,
  );
}

function lastRunsSql(tables: readonly string[] | null, withRepairs: boolean): CompiledQuery {
  const f = tableFilter(tables);
  const repairs = withRepairs ? '' : `${f.where ? ' AND' : ' WHERE'} NOT coalesce((summary->>'repair')::boolean, false)`;
  return compiled(
    `SELECT DISTINCT ON (table_name) run_id, table_name, loaded_at, pipeline_sha256, summary, count(*) OVER (PARTITION BY table_name) AS applied ` +
      `FROM ${runs}${f.where}${repairs} ORDER BY table_name, loaded_at DESC, run_id DESC`,
    f.parameters,
  );
}

const APPLIED_RUNS = compiled(`SELECT run_id, table_name FROM ${runs}`);

export interface PendingCounts {
  readonly rows: number;
  readonly nulls: number;
  readonly since: string | null;
}

const PENDING_COUNTS = compiled(
  `SELECT table_name, count(*) FILTER (WHERE kind = 'row')::bigint AS rows, count(*) FILTER (WHERE kind = 'null')::bigint AS nulls, min(since) AS since ` +
    `FROM ${ident(PENDING_TABLE)} GROUP BY table_name`,
);

/** The documents (identities) that claim a key another document claims too, per table of $1. */
const CONTESTED_CLAIMS = (tables: readonly string[]) =>
  compiled(
    `SELECT c.table_name, c.identity AS value FROM ${ident(CLAIMS_TABLE)} AS c WHERE c.table_name = ANY($1::text[]) AND (c.table_name, c.key) IN ` +
      `(SELECT x.table_name, x.key FROM ${ident(CLAIMS_TABLE)} AS x WHERE x.table_name = ANY($1::text[]) GROUP BY x.table_name, x.key HAVING count(*) > 1) ORDER BY 1, 2`,
    [tables],
  );

const GONE_COUNTS = compiled(`SELECT table_name, count(*)::bigint AS n FROM ${ident(GONE_TABLE)} GROUP BY table_name`);

/** The documents (their `_id` as rows' text) a load found gone, per table of $1. */
const GONE_KEYS = (tables: readonly string[]) => compiled(`SELECT g.table_name, g.key AS value FROM ${ident(GONE_TABLE)} AS g WHERE g.table_name = ANY($1::text[]) ORDER BY 1, 2`, [tables]);

const LEDGER_ROWS = (limit: number) =>
  compiled(`SELECT run_id, min(loaded_at) AS loaded_at, count(*)::int AS tables, jsonb_agg(summary ORDER BY loaded_at, table_name) AS summaries FROM ${runs} GROUP BY run_id ORDER BY run_id DESC LIMIT $1`, [limit]);

/** (table, value) rows → table → its values, in the rows' order. */
function byTable(rows: readonly { table_name: string; value: string }[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const row of rows) {
    const values = out.get(row.table_name);
    if (values) values.push(row.value);
    else out.set(row.table_name, [row.value]);
  }
  return out;
}

/**
 * The state tables' reads on one connection. `open` asks the catalog once which state tables exist
 * (and whether etl_watermarks has its fingerprint column: a database `etl schema` has not migrated
 * yet has none); each read then answers null (or nothing) for an absent table without asking again.
 */
export class StateReads {
  private constructor(
    private readonly client: Queryable,
    /** State table → it has a fingerprint column. */
    private readonly present: ReadonlyMap<string, boolean>,
  ) {}

  static async open(client: Queryable): Promise<StateReads> {
    return new StateReads(client, await existingTablesWithColumn(client, [WATERMARKS_TABLE, RUNS_TABLE, PENDING_TABLE, CLAIMS_TABLE, GONE_TABLE], 'fingerprint'));
  }

  /** The watermarks of `tables` (null: of every table); null when etl_watermarks does not exist. */
  async watermarkRows(tables: readonly string[] | null): Promise<WatermarkRow[] | null> {
    const withFingerprint = this.present.get(WATERMARKS_TABLE);
    if (withFingerprint === undefined) return null;
    const r = await runSql<{ table_name: string; watermark: Date; run_id: string; updated_at: Date; fingerprint: string | null }>(this.client, watermarksSql(tables, withFingerprint));
    return r.rows.map((w) => ({ table: w.table_name, watermark: w.watermark, runId: w.run_id, updatedAt: w.updated_at, fingerprint: w.fingerprint }));
  }

  /**
   * Per table of `tables` (null: every table), the run applied last (latest loaded_at, then greatest
   * run id) and how many were applied; null when etl_runs does not exist. Without `withRepairs`, repair
   * runs do not count: they re-read a few documents, not the table (the pipeline a table was read with).
   */
  async lastRuns(tables: readonly string[] | null, withRepairs = true): Promise<Map<string, LastRunRow> | null> {
    if (!this.present.has(RUNS_TABLE)) return null;
    const r = await runSql<{ run_id: string; table_name: string; loaded_at: Date; pipeline_sha256: string; summary: Record<string, unknown>; applied: string }>(this.client, lastRunsSql(tables, withRepairs));
    return new Map(
      r.rows.map((row) => [
        row.table_name,
        { table: row.table_name, runId: row.run_id, loadedAt: row.loaded_at, pipelineSha256: row.pipeline_sha256, summary: row.summary, applied: Number(row.applied) },
      ]),
    );
  }

  /** run id → the tables loaded from it; null when etl_runs does not exist. */
  async appliedRuns(): Promise<Map<string, Set<string>> | null> {
    if (!this.present.has(RUNS_TABLE)) return null;
    const out = new Map<string, Set<string>>();
    for (const row of (await runSql<{ run_id: string; table_name: string }>(this.client, APPLIED_RUNS)).rows) {
      let s = out.get(row.run_id);
      if (!s) out.set(row.run_id, (s = new Set()));
      s.add(row.table_name);
    }
    return out;
  }

  /** Per table: rows held back and NULLed references waiting in etl_pending, and the oldest entry's time; null when it does not exist. */
  async pendingCounts(): Promise<Map<string, PendingCounts> | null> {
    if (!this.present.has(PENDING_TABLE)) return null;
    const r = await runSql<{ table_name: string; rows: string; nulls: string; since: Date | null }>(this.client, PENDING_COUNTS);
    return new Map(r.rows.map((x) => [x.table_name, { rows: Number(x.rows), nulls: Number(x.nulls), since: x.since?.toISOString() ?? null }]));
  }

  /**
   * Per table of `tables`: the identities (etl_claims) of the documents that claim a key another
   * document claims too (load/claims.ts); empty when etl_claims does not exist.
   */
  async contestedClaims(tables: readonly string[]): Promise<Map<string, string[]>> {
    if (!this.present.has(CLAIMS_TABLE) || tables.length === 0) return new Map();
    return byTable((await runSql<{ table_name: string; value: string }>(this.client, CONTESTED_CLAIMS(tables))).rows);
  }

  /** Per table: how many documents a load found gone (etl_gone); null when it does not exist. */
  async goneCounts(): Promise<Map<string, number> | null> {
    if (!this.present.has(GONE_TABLE)) return null;
    return new Map((await runSql<{ table_name: string; n: string }>(this.client, GONE_COUNTS)).rows.map((r) => [r.table_name, Number(r.n)]));
  }

  /** Per table of `tables`: the documents a load found gone (etl_gone, load/gone-documents.ts); empty when etl_gone does not exist. */
  async goneKeys(tables: readonly string[]): Promise<Map<string, string[]>> {
    if (!this.present.has(GONE_TABLE) || tables.length === 0) return new Map();
    return byTable((await runSql<{ table_name: string; value: string }>(this.client, GONE_KEYS(tables))).rows);
  }

  /** The newest runs of the ledger, newest first: per run, when, how many tables, every table's summary. */
  async ledgerRows(limit: number): Promise<{ run_id: string; loaded_at: Date; tables: number; summaries: Record<string, unknown>[] }[]> {
    if (!this.present.has(RUNS_TABLE)) return [];
    return (await runSql(this.client, LEDGER_ROWS(limit))).rows;
  }
}
