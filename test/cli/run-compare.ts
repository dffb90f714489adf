// What two staged runs and two databases are compared by, when one was made by `etl run` and the
// other by `etl extract && etl transform && etl load`: the run folder's files (sha256), the
// manifest without its timestamps and durations, and every table of PostgreSQL, the tool's state
// tables included (their timestamps and run ids aside).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

/** sha256 of every file of a run folder but the manifest, by path relative to the folder. */
export async function runFiles(runDir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(runDir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const name = path.relative(runDir, file);
    if (name === 'manifest.json') continue;
    out[name] = createHash('sha256').update(await readFile(file)).digest('hex');
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** When things happened and how long they took differ between two runs; nothing else may. */
export const TIMES = new Set(['started_at', 'ended_at', 'server_started_at', 'seconds', 'run_id', 'since']);

/** The manifest without its timestamps and durations (a live server's clock-based watermark is one). */
export function withoutTimes(value: unknown, ...names: string[]): unknown {
  if (Array.isArray(value)) return value.map((v) => withoutTimes(v, ...names));
  if (value === null || typeof value !== 'object') return typeof value === 'string' ? names.reduce((s, n) => s.replaceAll(n, '<name>'), value) : value;
  const out: Record<string, unknown> = {};
  const record = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(record)) {
    if (TIMES.has(k)) continue;
    if (k === 'next' && record.next_basis === 'server_clock') continue;
    out[k] = withoutTimes(v, ...names);
  }
  return out;
}


/** A run id (a timestamp) wherever a state table names one (etl_pending.seen_run). */
const withoutRunIds = (_key: string, value: unknown): unknown => (typeof value === 'string' && /^\d{8}T\d{9}Z$/.test(value) ? '<run>' : value);

/** Timestamp columns differ between two loads; in the tool's state tables they are when, not what. */
const STATE_TIME_TYPES = /^(timestamp|date|time)/;

/**
 * Every table of the database's public schema as its rows (JSON text, sorted), users_logbook's
 * SERIAL ids included. In the tool's etl_* tables the timestamp and run_id columns are left out,
 * and JSON values lose their timestamps (withoutTimes): two runs never share those.
 */
export async function databaseState(url: string): Promise<Record<string, string[]>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
    const out: Record<string, string[]> = {};
    for (const { name } of tables.rows) {
      const columns = await client.query<{ name: string; type: string }>(
        'SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum',
        [pg.escapeIdentifier(name)],
      );
      const state = name.startsWith('etl_');
      const kept = columns.rows.filter((c) => !state || !(STATE_TIME_TYPES.test(c.type) || c.name === 'run_id')).map((c) => pg.escapeIdentifier(c.name));
      const rows = await client.query<{ r: unknown }>(`SELECT row_to_json(x) AS r FROM (SELECT ${kept.join(', ')} FROM ${pg.escapeIdentifier(name)}) AS x`);
      out[name] = rows.rows.map((row) => JSON.stringify(state ? withoutTimes(row.r) : row.r, state ? withoutRunIds : undefined)).sort();
    }
    return out;
  } finally {
    await client.end();
  }
}

/** The two databases hold the same tables and rows; a difference is shown table by table, a few rows each. */
export async function assertSameDatabase(a: string, b: string, what: string): Promise<Record<string, string[]>> {
  const [x, y] = [await databaseState(a), await databaseState(b)];
  assert.deepEqual(Object.keys(x), Object.keys(y), `${what}: the same tables`);
  const differences: string[] = [];
  for (const table of Object.keys(x)) {
    const [rowsA, rowsB] = [new Set(x[table]), new Set(y[table])];
    const onlyA = x[table]!.filter((r) => !rowsB.has(r));
    const onlyB = y[table]!.filter((r) => !rowsA.has(r));
    if (onlyA.length + onlyB.length === 0 && x[table]!.length === y[table]!.length) continue;
    differences.push(`${table}: ${x[table]!.length} rows ≠ ${y[table]!.length}; only in the first: ${onlyA.slice(0, 3).join(' ')}; only in the second: ${onlyB.slice(0, 3).join(' ')}`);
  }
  assert.deepEqual(differences, [], `${what}: every table the same`);
  return x;
}
