// The shared machinery of the exact-mirror tests (issue 12): one CLI runner, one MongoDB source
// with two PostgreSQL databases (the one loaded incrementally, and the reference a full run of the
// final MongoDB state fills), and one comparison that, when the two differ, says per table which
// rows are missing, extra or different by the table's key.
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MongoClient, ObjectId, type Db, type Document } from 'mongodb';
import pg from 'pg';
import { etl, startEtl, STACK_LINE, type CliResult, type EtlProcess } from '../harness/cli.ts';
import type { Servers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { archiveBytes, writeDumpFolder } from '../extract/dump-writer.ts';
import { csvReader } from '../../staging/csv.ts';
import type { ColumnModel, PipelineModel, TableModel } from '../../model/types.ts';
import type { Rng } from '../../sample/prng.ts';
import { contributionsTableName } from '../../schema/state-tables.ts';
import type { TableDiff as DiffFigures } from '../../inspect/diff.ts';
import { dedupeKeys, formatEdit, type Edit } from './edits.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PIPELINE = path.join(REPO, 'pipeline.yaml');

/** An incremental run is `etl run`, or its three stages one after the other (`INCREMENTAL_STAGES`). */
export type IncrementalCommand = 'run' | 'extract' | 'transform' | 'load';
export const INCREMENTAL_STAGES: readonly IncrementalCommand[] = ['extract', 'transform', 'load'];

/** What `etl run --json` prints (the parts these tests read). */
export interface RunReport {
  readonly runId: string;
  readonly extract: { readonly collections: readonly { readonly collection: string; readonly documents: number; readonly watermark: { readonly from: string | null } }[] };
}

interface HasAfter {
  after(fn: () => unknown): void;
  readonly name: string;
}

/**
 * One test's world: a MongoDB database, the PostgreSQL database loaded run after run
 * (`incremental`), and as many reference databases as the test asks for (`reference()`), each
 * filled by one full run of MongoDB as it is then. Everything is removed when the test ends.
 */
export class Mirror {
  private client: MongoClient | null = null;
  private references = 0;
  /**
   * Variables every `etl run` of this test gets, the incremental ones and the reference alike (e.g.
   * GLOBAL_DATE_THRESHOLD): a reference is a full run in the same environment.
   */
  env: Record<string, string> = {};

  private constructor(
    private readonly t: HasAfter,
    private readonly servers: Servers,
    readonly model: PipelineModel,
    readonly mongo: { readonly name: string; readonly url: string },
    /** The database every `incremental()` run loads into. */
    readonly incrementalUrl: string,
    /** Staging folders live here. */
    readonly work: string,
  ) {}

  static async open(t: HasAfter, servers: Servers): Promise<Mirror> {
    const model = await loadPipeline(PIPELINE);
    const mongo = await servers.mongo.newDatabase(t.name);
    const incremental = await servers.postgres.createDatabase(`${t.name} incremental`);
    const work = await mkdtemp(path.join(os.tmpdir(), 'etl-mirror-'));
    const mirror = new Mirror(t, servers, model, mongo, incremental, work);
    t.after(async () => {
      await mirror.client?.close();
      await rm(work, { recursive: true, force: true });
    });
    return mirror;
  }

  /** Tables in load order (every table pipeline.yaml declares; the tool's etl_* tables aside). */
  get tables(): readonly string[] {
    return this.model.loadOrder;
  }

  /** `etl sample` into this test's MongoDB database. */
  async sample(scale: number, seed = 1): Promise<void> {
    const r = await etl(['sample', '--scale', String(scale), '--seed', String(seed), '--mongo-url', this.mongo.url, '--db', this.mongo.name]);
    assert.equal(r.code, 0, r.stderr);
  }

  /** The MongoDB database, through one client per test (closed when the test ends). */
  async db(): Promise<Db> {
    if (!this.client) {
      this.client = new MongoClient(this.mongo.url);
      await this.client.connect();
    }
    return this.client.db(this.mongo.name);
  }

  /**
   * `etl run` into the incremental database (the first one is a full run: no watermark yet), with
   * `pipeline` (default: the shipped pipeline.yaml), from the live server or from `source`: a dump
   * (see dump()).
   */
  incremental(extra: readonly string[] = [], pipeline = PIPELINE, source?: string): Promise<RunReport> {
    return this.run('incremental', this.incrementalUrl, extra, pipeline, source);
  }

  /** The staging folder of the incremental database's runs. */
  get incrementalStaging(): string {
    return path.join(this.work, 'incremental');
  }

  /**
   * The arguments of `etl <command>` against this test's MongoDB (extract, run), the incremental
   * staging folder and database (`--database-url` where the command takes it; run every command
   * with `incrementalEnv` too: extract reads the watermarks through DATABASE_URL), without `--json`,
   * with `pipeline` (default: the shipped pipeline.yaml); extract and run read `dump` (see dump())
   * instead of the live server when it is given.
   */
  incrementalArgs(command: IncrementalCommand | 'status', extra: readonly string[] = [], pipeline = PIPELINE, dump?: string): string[] {
    const live = dump === undefined ? ['--source', this.mongo.url, '--mongo-db', this.mongo.name] : ['--source', dump];
    const source = command === 'run' || command === 'extract' ? live : [];
    const database = command === 'run' || command === 'load' || command === 'status' ? ['--database-url', this.incrementalUrl] : [];
    return [command, ...source, '--staging', this.incrementalStaging, '--pipeline', pipeline, ...database, ...extra];
  }

  /** The environment of the commands `incrementalArgs` spells. */
  get incrementalEnv(): Record<string, string> {
    return { DATABASE_URL: this.incrementalUrl };
  }

  /**
   * Starts `etl <command>` against the incremental database (`incrementalArgs` with `pipeline`,
   * `incrementalEnv` and `env`) as a child process, killed after `timeoutMs`: a test acts while it runs.
   */
  startIncremental(command: IncrementalCommand | 'status', extra: readonly string[], options: { env?: Record<string, string>; timeoutMs: number; pipeline?: string }): EtlProcess {
    return startEtl(this.incrementalArgs(command, extra, options.pipeline), { env: { ...this.incrementalEnv, ...options.env }, timeoutMs: options.timeoutMs });
  }

  /**
   * The MongoDB database as mongodump writes it, in `<work>/dumps/`: each collection's documents as
   * the server sent their BSON bytes (`raw`). `folder`: `<label>/<c>.bson` beside its
   * `<c>.metadata.json`; `archive`: `<label>.archive.gz`, what `etl refresh mongo` brings (`mongodump
   * --archive --gzip`: collections interleaved in segments). Returns the path, for `etl run --source`.
   */
  async dump(label: string, format: 'folder' | 'archive' = 'folder'): Promise<string> {
    const db = await this.db();
    const collections: Record<string, Buffer[]> = {};
    for (const { name } of await db.listCollections({}, { nameOnly: true }).toArray()) {
      const docs: Buffer[] = (collections[name] = []);
      for await (const raw of db.collection(name).find({}, { raw: true })) docs.push(Buffer.from(raw as unknown as Uint8Array));
    }
    const dumps = path.join(this.work, 'dumps');
    await mkdir(dumps, { recursive: true });
    if (format === 'archive') {
      const file = path.join(dumps, `${label}.archive.gz`);
      await writeFile(file, archiveBytes(this.mongo.name, collections, { segment: 50, gzip: true }));
      return file;
    }
    const dir = path.join(dumps, label);
    await writeDumpFolder(dir, collections);
    return dir;
  }

  /** A fresh database filled by `etl run --full` of MongoDB as it is now, with `pipeline`; returns its URL. */
  async reference(pipeline = PIPELINE): Promise<string> {
    return (await this.referenceRun(pipeline)).url;
  }

  /** reference(), with the folder of the full run that filled it (its rejects files say what a full run refuses). */
  async referenceRun(pipeline = PIPELINE): Promise<{ url: string; folder: string }> {
    this.references += 1;
    const url = await this.servers.postgres.createDatabase(`${this.t.name} full ${this.references}`);
    const staging = `full-${this.references}`;
    const report = await this.run(staging, url, ['--full'], pipeline);
    return { url, folder: path.join(this.work, staging, report.runId) };
  }

  /** The staged file `relative` (e.g. `transform/messages.rejects.ndjson`) of a run, or '' when absent. */
  async stagedFile(report: RunReport, relative: string): Promise<string> {
    const file = path.join(this.work, 'incremental', report.runId, relative);
    return readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return '';
      throw e;
    });
  }

  private async run(staging: string, databaseUrl: string, extra: readonly string[], pipeline: string, source?: string): Promise<RunReport> {
    const from = source === undefined ? ['--source', this.mongo.url, '--mongo-db', this.mongo.name] : ['--source', source];
    const args = ['run', '--json', ...from, '--staging', path.join(this.work, staging)];
    const r = await etl([...args, '--pipeline', pipeline, '--database-url', databaseUrl, ...extra], { env: this.env });
    assert.equal(r.code, 0, `etl run ${extra.join(' ')} into ${staging} failed:\n${r.output}`);
    // The error boundary prints no stack trace without --verbose (README, the operator's day).
    assert.doesNotMatch(r.stderr, STACK_LINE, `etl run ${extra.join(' ')} into ${staging} printed a stack trace:\n${r.stderr}`);
    return JSON.parse(r.stdout) as RunReport;
  }
}

/**
 * The shipped pipeline.yaml with another `settings.watermark_margin_seconds`, written into `dir`;
 * returns its path. With the shipped 300 s every run re-reads whatever changed in the last five
 * minutes, which is every edit of a test: a run that missed an edit would pass unseen.
 */
export async function pipelineWithMargin(dir: string, seconds: number): Promise<string> {
  const file = path.join(dir, 'pipeline.yaml');
  await writeFile(file, withMargin(await readFile(PIPELINE, 'utf8'), seconds));
  return file;
}

/** A pipeline's text with another `settings.watermark_margin_seconds`. */
function withMargin(text: string, seconds: number): string {
  const setting = /^(  watermark_margin_seconds:) \d+$/m;
  assert.match(text, setting, 'pipeline.yaml sets settings.watermark_margin_seconds');
  return text.replace(setting, `$1 ${seconds}`);
}

/**
 * The shipped pipeline.yaml with `users.email` declared unique (the app's MongoDB has a unique index
 * on it, the sample's too), and another `settings.watermark_margin_seconds` when given (see
 * pipelineWithMargin), written into `dir`; returns its path. For the tests of a unique constraint
 * beside the key a table merges on (load/unique-values.ts).
 */
export async function uniqueEmailPipeline(dir: string, marginSeconds?: number): Promise<string> {
  const shipped = await readFile(PIPELINE, 'utf8');
  const anchor = '      birthday: birthdate\n      company: company_id\n    export_order: 2\n';
  assert.ok(shipped.includes(anchor), 'the users table of pipeline.yaml has moved: update uniqueEmailPipeline');
  const unique = shipped.replace(anchor, '      birthday: birthdate\n      company: company_id\n    unique_constraints:\n      - [email]\n    export_order: 2\n');
  const file = path.join(dir, 'pipeline-unique-email.yaml');
  await writeFile(file, marginSeconds === undefined ? unique : withMargin(unique, marginSeconds));
  return file;
}

/** A list of non-negative integers from an environment variable (`7` or `1,2,3`; the tests' seeds and sizes; set but empty: none), else `fallback`. */
export function integers(name: string, fallback: readonly number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined) return [...fallback];
  // Set but empty: none (MIRROR_DUMP_SEEDS= runs the live seeds alone).
  if (raw.trim() === '') return [];
  const values = raw.split(',').map((s) => Number(s.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < 0)) throw new Error(`${name}: expected non-negative integers separated by commas, got "${raw}"`);
  return values;
}

/** Rows of one query, on a short-lived connection. */
export async function query<R extends pg.QueryResultRow = Record<string, unknown>>(url: string, sql: string, params: readonly unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, [...params])).rows;
  } finally {
    await client.end();
  }
}

/** A TIMESTAMP column as the ISO text of the JavaScript Date it came from (`Date.toISOString()`). */
export const iso = (column: string): string => `to_char(${column}, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * A table's columns by name (a column `etl schema` adds comes last in the table, a fresh run puts it
 * where pipeline.yaml does); users_logbook without its SERIAL id (PostgreSQL's own numbering).
 */
async function comparedColumns(client: pg.Client, table: string): Promise<string[]> {
  const rows = await client.query<{ attname: string }>(
    'SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attname COLLATE "C"',
    [pg.escapeIdentifier(table)],
  );
  return rows.rows.map((r) => r.attname).filter((c) => !(table === 'users_logbook' && c === 'id'));
}

const rowText = (cols: readonly string[]): string => `ROW(${cols.map((c) => `x.${pg.escapeIdentifier(c)}`).join(', ')})::text`;

/** Every table as `(<columns>): <count> rows <md5 of the rows sorted>`. */
export async function contents(url: string, tables: readonly string[]): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, string> = {};
    for (const t of tables) {
      const cols = await comparedColumns(client, t);
      const row = rowText(cols);
      const r = await client.query(`SELECT count(*)::int AS n, coalesce(md5(string_agg(${row}, '|' ORDER BY ${row})), '') AS h FROM ${pg.escapeIdentifier(t)} AS x`);
      out[t] = `(${cols.join(', ')}): ${r.rows[0].n} rows ${r.rows[0].h}`;
    }
    return out;
  } finally {
    await client.end();
  }
}

/** One table's difference between the incremental database and the reference, by the table's key. */
export interface TableDiff {
  readonly table: string;
  readonly key: readonly string[];
  /** In the reference, not in the incremental database. */
  readonly missing: readonly string[];
  /** In the incremental database, not in the reference. */
  readonly extra: readonly string[];
  /** Same key, other values: `key: incremental ≠ reference`. */
  readonly different: readonly string[];
}

/** A row as keyedRows() reads it: its compared columns as one text, and each column's text (NULL: null). */
export interface KeyedRow {
  readonly text: string;
  readonly values: Readonly<Record<string, string | null>>;
}

/** Rows of a table keyed by its merge key (primary key, unique constraint or dedupe key) as text, e.g. `(<user>,2024-03-07)`. */
export async function keyedRows(url: string, table: string, key: readonly string[]): Promise<Map<string, KeyedRow>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const cols = await comparedColumns(client, table);
    const keyCols = key.length > 0 ? key : cols;
    const values = `json_build_object(${cols.map((c) => `${pg.escapeLiteral(c)}, x.${pg.escapeIdentifier(c)}::text`).join(', ')})`;
    const r = await client.query<{ k: string; r: string; v: Record<string, string | null> }>(
      `SELECT ${rowText(keyCols)} AS k, ${rowText(cols)} AS r, ${values} AS v FROM ${pg.escapeIdentifier(table)} AS x`,
    );
    return new Map(r.rows.map((x) => [x.k, { text: x.r, values: x.v }]));
  } finally {
    await client.end();
  }
}

/**
 * The rows a run staged for a table (`<run folder>/transform/<table>.csv`: what its load was offered,
 * before any reference was checked), keyed as keyedRows() keys a table's rows, their values in
 * PostgreSQL's text forms: COPYed into a scratch table shaped like `table` in the database at `url`,
 * dropped after.
 */
export async function stagedRows(url: string, folder: string, table: string, key: readonly string[]): Promise<Map<string, KeyedRow>> {
  const csv = await readFile(path.join(folder, 'transform', `${table}.csv`));
  const header = csv.subarray(0, csv.indexOf(0x0a)).toString('utf8').split(',').map((c) => c.replace(/^"|"$/g, ''));
  const scratch = `etl_test_staged_${table}`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const columns = header.map((c) => pg.escapeIdentifier(c)).join(', ');
    await client.query(`CREATE TABLE ${pg.escapeIdentifier(scratch)} AS SELECT ${columns} FROM ${pg.escapeIdentifier(table)} WITH NO DATA`);
    await pipeline(Readable.from([csv]), client.query(copyFrom(`COPY ${pg.escapeIdentifier(scratch)} (${columns}) FROM STDIN WITH (FORMAT csv, HEADER true)`)));
    return await keyedRows(url, scratch, key);
  } finally {
    await client.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(scratch)}`).catch(() => undefined);
    await client.end();
  }
}

/** Rows of a table keyed by its merge key, each as one text (keyedRows without the column values). */
export async function rowsByKey(url: string, table: string, key: readonly string[]): Promise<Map<string, string>> {
  return new Map([...(await keyedRows(url, table, key))].map(([k, row]) => [k, row.text]));
}

export async function diffTable(model: PipelineModel, incrementalUrl: string, referenceUrl: string, table: string): Promise<TableDiff> {
  const key = model.tables.get(table)?.mergeKey ?? [];
  const [mine, theirs] = await Promise.all([rowsByKey(incrementalUrl, table, key), rowsByKey(referenceUrl, table, key)]);
  const missing = [...theirs.keys()].filter((k) => !mine.has(k));
  const extra = [...mine.keys()].filter((k) => !theirs.has(k));
  const different = [...mine].filter(([k, r]) => theirs.has(k) && theirs.get(k) !== r).map(([k, r]) => `${k}: ${r} ≠ ${theirs.get(k)}`);
  return { table, key, missing: missing.sort(), extra: extra.sort(), different: different.sort() };
}

export interface DiffReport {
  /** Compared tables (default: every table of the model). */
  readonly tables?: readonly string[];
  /** Printed after the differences (e.g. how to replay). */
  readonly context?: string;
  /** Examples printed per kind and table. */
  readonly examples?: number;
  /** Extra words for one example (the row's key and values as text), e.g. the edits that touched it. */
  readonly annotate?: (row: string) => string;
  /** A label per differing row (e.g. the kinds of the edits that touched it), counted per table. */
  readonly classify?: (row: string) => string;
}

/** `label count, label count` over the rows, most frequent first. */
function tally(rows: readonly string[], classify: (row: string) => string): string {
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(classify(row), (counts.get(classify(row)) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([label, n]) => `${label} ${n}`).join(', ');
}

/** Counts, then a few examples of each kind, one table a paragraph. */
export function describeDiffs(diffs: readonly TableDiff[], report: DiffReport = {}): string {
  const lines: string[] = [];
  for (const d of diffs) {
    lines.push(`${d.table} (key ${d.key.join(', ') || 'whole row'}): ${d.missing.length} missing, ${d.extra.length} extra, ${d.different.length} different`);
    for (const [label, list] of [['missing', d.missing], ['extra', d.extra], ['different', d.different]] as const) {
      if (report.classify && list.length > 0) lines.push(`  ${label} by edit: ${tally(list, report.classify)}`);
    }
    for (const [label, list] of [['missing', d.missing], ['extra', d.extra], ['different', d.different]] as const) {
      for (const x of list.slice(0, report.examples ?? 3)) {
        const note = report.annotate?.(x) ?? '';
        lines.push(`    ${label} ${x}${note ? `\n        ${note}` : ''}`);
      }
    }
  }
  return lines.join('\n');
}

/** The `(<columns>)` part of a `contents()` value. */
const columnsOf = (content: string): string => content.slice(0, content.indexOf(': '));

/**
 * Asserts that every table of the incremental database equals the reference (ordered checksums).
 * When they differ, the message lists per table the rows missing, extra and different by key.
 */
export async function assertMirrors(model: PipelineModel, incrementalUrl: string, referenceUrl: string, report: DiffReport = {}): Promise<void> {
  const tables = report.tables ?? model.loadOrder;
  const [mine, theirs] = await Promise.all([contents(incrementalUrl, tables), contents(referenceUrl, tables)]);
  const differing = tables.filter((t) => mine[t] !== theirs[t]);
  if (differing.length === 0) return;
  const diffs = await Promise.all(differing.map((t) => diffTable(model, incrementalUrl, referenceUrl, t)));
  const columns = differing
    .filter((t) => columnsOf(mine[t]!) !== columnsOf(theirs[t]!))
    .map((t) => `${t}: columns ${columnsOf(mine[t]!)} ≠ ${columnsOf(theirs[t]!)} in the reference\n`);
  const context = report.context ? `\n${report.context}` : '';
  assert.fail(`the incremental database differs from a full run of the final MongoDB state in ${differing.length} table(s):\n${columns.join('')}${describeDiffs(diffs, report)}${context}`);
}

/** The edit changed the document behind the row: its _id is in the row, or a dedupe key it had or has. */
const names = (e: Edit, row: string): boolean => row.includes(e.id) || e.keys.some((k) => row.includes(k));

/**
 * The edits that may explain a row (its key and values as text): first those that edited a document
 * the row names, then those that named it otherwise (a logbook's user, a reference, an added link);
 * each as `format` writes it.
 */
export function editsTouching(edits: readonly Edit[], row: string, format: (e: Edit) => string = formatEdit): string {
  const direct = edits.filter((e) => names(e, row));
  const indirect = edits.filter((e) => !names(e, row) && e.touches.some((id) => row.includes(id)));
  const shown = [...direct.slice(-8), ...indirect.slice(-3)];
  if (shown.length === 0) return '(no edit names these ids: a cascade, or a row no edit touched)';
  const hidden = direct.length + indirect.length - shown.length;
  return [...shown.map((e) => `${direct.includes(e) ? '←' : '⋯'} ${format(e)}`), ...(hidden > 0 ? [`(${hidden} more)`] : [])].join('\n        ');
}

/**
 * The kinds of the edits made to a document the row names; else (`~`) of the edits that named one
 * of its ids otherwise (a logbook edit names its user, whose id is in the (user, day) row); else
 * 'cascade' (a row further down moved).
 */
export function editKinds(edits: readonly Edit[], row: string): string {
  const direct = new Set(edits.filter((e) => names(e, row)).map((e) => e.kind));
  if (direct.size > 0) return [...direct].sort().join('+');
  const indirect = new Set(edits.filter((e) => e.touches.some((id) => row.includes(id))).map((e) => `~${e.kind}`));
  return indirect.size > 0 ? [...indirect].sort().join('+') : 'cascade';
}

/**
 * Every table's rows by its merge key (`rowsByKey`): what a test compares before and after a run. A
 * table not created yet (before the first load) has none.
 */
export async function snapshot(model: PipelineModel, url: string): Promise<Map<string, Map<string, string>>> {
  const out = new Map<string, Map<string, string>>();
  const quoted = model.loadOrder.map((t) => pg.escapeIdentifier(t));
  const exists = await query<{ t: string }>(url, 'SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL', [quoted]);
  const created = new Set(exists.map((r) => model.loadOrder[quoted.indexOf(r.t)]));
  for (const table of model.loadOrder) out.set(table, created.has(table) ? await rowsByKey(url, table, model.tables.get(table)?.mergeKey ?? []) : new Map());
  return out;
}

/**
 * The key (as `rowsByKey` writes it: `ROW(<key columns>)::text`) of every record of a staged CSV
 * (`transform/<table>.csv`, or a dedupe table's `contrib.csv`), read as PostgreSQL reads the cells:
 * each cell cast to the type of the table's column of that name.
 */
export async function stagedKeys(url: string, table: string, key: readonly string[], csvFile: string): Promise<Set<string>> {
  assert.ok(key.length > 0, `${table}: a key to read the staged rows by`);
  const cells: (string | null)[][] = key.map(() => []);
  let positions: number[] | null = null;
  for await (const record of createReadStream(csvFile).pipe(csvReader()) as AsyncIterable<(string | null)[]>) {
    if (positions === null) {
      positions = key.map((k) => record.indexOf(k));
      assert.ok(positions.every((p) => p >= 0), `${csvFile}: key columns ${key.join(', ')} in the header ${record.join(',')}`);
      continue;
    }
    positions.forEach((p, i) => cells[i]!.push(record[p]!));
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const types = await client.query<{ attname: string; type: string }>(
      'SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped',
      [pg.escapeIdentifier(table)],
    );
    const typeOf = new Map(types.rows.map((r) => [r.attname, r.type]));
    const casts = key.map((k, i) => `u.c${i}::${typeOf.get(k)}`);
    const params = key.map((_, i) => `$${i + 1}::text[]`);
    const names = key.map((_, i) => `c${i}`);
    const r = await client.query<{ k: string }>(`SELECT ROW(${casts.join(', ')})::text AS k FROM unnest(${params.join(', ')}) AS u(${names.join(', ')})`, cells);
    return new Set(r.rows.map((x) => x.k));
  } finally {
    await client.end();
  }
}

/** The first cell of every record of a CSV (a contributions file: the document's `_id`), header aside. */
export async function firstCells(file: string): Promise<string[]> {
  const out: string[] = [];
  for await (const record of createReadStream(file).pipe(csvReader()) as AsyncIterable<(string | null)[]>) out.push(record[0] ?? '');
  return out.slice(1);
}

/** The lines of a text file that are not empty (an NDJSON file's records). */
export const lineCount = async (file: string): Promise<number> => (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').length;

/**
 * What the load rejects file lists (one line per row and column): the rows refused (any `reject`
 * line), and the references set NULL in the rows that were not refused (their `set_null` lines).
 */
export async function loadRejects(runDir: string, table: string): Promise<{ reject: string[]; setNull: string[] }> {
  const text = await readFile(path.join(runDir, 'load', `${table}.rejects.ndjson`), 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return '';
    throw e;
  });
  const lines = text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { key: unknown; line: number | null; column: string; action: string });
  // A row: its staged line, or its key for a dedupe row recomputed from earlier contributions (no line).
  const rowOf = (r: { key: unknown; line: number | null }) => `${r.line ?? ''} ${JSON.stringify(r.key)}`;
  const reject = new Set(lines.filter((r) => r.action === 'reject').map(rowOf));
  const setNull = lines.filter((r) => r.action === 'set_null' && !reject.has(rowOf(r))).map((r) => `${rowOf(r)} ${r.column}`);
  return { reject: [...reject].sort(), setNull: setNull.sort() };
}

/** One column of a table's rows, as text, by the rows' key (as `rowsByKey` writes it): e.g. each row's document. */
export async function columnByKey(url: string, table: string, key: readonly string[], column: string): Promise<Map<string, string | null>> {
  const rows = await query<{ k: string; v: string | null }>(url, `SELECT ${rowText(key)} AS k, x.${pg.escapeIdentifier(column)}::text AS v FROM ${pg.escapeIdentifier(table)} AS x`);
  return new Map(rows.map((r) => [r.k, r.v]));
}

/** One contribution of a dedupe table's state table: the key it feeds and the whole row, as text. */
export interface Contribution {
  readonly key: string;
  readonly row: string;
}

/** `etl_contrib_<table>` by source document `_id` (its first column): what each document contributes now. */
export async function contributions(url: string, table: TableModel): Promise<Map<string, Contribution>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const state = pg.escapeIdentifier(contributionsTableName(table.name));
    const exists = await client.query<{ r: string | null }>('SELECT to_regclass($1) AS r', [state]);
    if (exists.rows[0]!.r === null) return new Map();
    const cols = (await client.query<{ attname: string }>('SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum', [state])).rows.map((r) => r.attname);
    const doc = pg.escapeIdentifier(cols[0]!);
    const r = await client.query<{ d: string; k: string; r: string }>(`SELECT x.${doc} AS d, ${rowText(table.mergeKey)} AS k, ${rowText(cols)} AS r FROM ${state} AS x`);
    return new Map(r.rows.map((x) => [x.d, { key: x.k, row: x.r }]));
  } finally {
    await client.end();
  }
}

// ── the transform's figures ──────────────────────────────────────────────────────────────────────

/** A staged file as the manifest records it. */
export interface FileRecord {
  readonly file: string;
  readonly records: number;
}

/** A table's transform figures as the manifest records them (README "Counts reconcile"). */
export interface TransformTable {
  readonly strategy: 'upsert' | 'explode' | 'dedupe';
  readonly documents: number;
  readonly rows: number;
  readonly rejected: number;
  readonly skipped: Readonly<Record<string, number>>;
  readonly csv: FileRecord;
  readonly keys: FileRecord | null;
  readonly rejects: FileRecord;
  readonly contrib?: FileRecord;
  /** Delete propagation: the keys of every row the table may hold. */
  readonly live?: FileRecord;
  readonly unkeyed: number;
  readonly absent?: number;
  readonly dedupe?: { readonly superseded: number };
  readonly explode?: {
    readonly parents: number;
    readonly items: number;
    readonly rejected_documents: number;
    readonly rejected_items: number;
    readonly skipped_documents: Readonly<Record<string, number>>;
    readonly skipped_items: Readonly<Record<string, number>>;
  };
}

/** One figure that is not what happened. */
export interface Mismatch {
  readonly table: string;
  readonly figure: string;
  readonly expected: number | string;
  readonly reported: number | string;
  readonly examples: readonly string[];
}

const sum = (xs: Readonly<Record<string, number>> | undefined): number => Object.values(xs ?? {}).reduce((a, b) => a + b, 0);

/** The transform's counts reconcile per table (README "Counts reconcile"), and its files hold what it says. */
export async function transformMismatches(runDir: string, tables: Readonly<Record<string, TransformTable>>): Promise<Mismatch[]> {
  const out: Mismatch[] = [];
  const check = (table: string, figure: string, expected: number, reported: number) => {
    if (expected !== reported) out.push({ table, figure, expected, reported, examples: [] });
  };
  for (const [table, t] of Object.entries(tables)) {
    if (t.explode) {
      const e = t.explode;
      check(table, 'transform documents = parents + rejected documents + skipped documents', e.parents + e.rejected_documents + sum(e.skipped_documents), t.documents);
      check(table, 'transform items = rows + rejected items + skipped items', t.rows + e.rejected_items + sum(e.skipped_items), e.items);
    } else {
      check(table, 'transform documents = rows + rejected + skipped', t.rows + t.rejected + sum(t.skipped), t.documents);
    }
    if (t.keys) check(table, 'transform keys records + unkeyed = documents (+ absent)', t.documents + (t.absent ?? 0), t.keys.records + t.unkeyed);
    if (t.dedupe && t.contrib) check(table, 'transform contrib records = rows + superseded', t.rows + t.dedupe.superseded, t.contrib.records);
    check(table, 'transform csv records = rows', t.rows, t.csv.records);
    check(table, 'transform rejects records = rejected', t.rejected, t.rejects.records);
    check(table, 'transform rejects file lines = its records', t.rejects.records, await lineCount(path.join(runDir, t.rejects.file)));
    check(table, 'transform csv records = the records the file holds', t.csv.records, (await firstCells(path.join(runDir, t.csv.file))).length);
  }
  return out;
}

// ── drift made by hand in PostgreSQL ─────────────────────────────────────────────────────────────

export type HandKind = 'pg_delete' | 'pg_update' | 'pg_null_ref' | 'pg_insert' | 'pg_delete_link';

/** How often each hand edit is drawn (relative weights). */
const HAND_WEIGHTS: readonly (readonly [HandKind, number])[] = [
  ['pg_delete', 4],
  ['pg_update', 4],
  ['pg_null_ref', 2],
  ['pg_insert', 2],
  ['pg_delete_link', 2],
];

/**
 * Which hand edits a HandEditor makes: only these kinds (default: all), only on the rows of a table
 * `rows` gives a condition for, on the table's row `x` (SQL; null: none of the table's rows).
 */
export interface HandScope {
  readonly kinds?: readonly HandKind[];
  readonly rows?: (table: TableModel) => string | null;
}

/** A row as to_jsonb gives it (values as text). */
type RowValues = Record<string, string | null>;

const HEX = /^[0-9a-f]{24}$/;

/**
 * Edits an operator makes in PostgreSQL by hand, seeded (the caller's Rng): a row deleted (and,
 * as the foreign keys demand, the rows referencing it deleted or their set_null references NULLed,
 * as a load follows a deleted row), a column's value changed, a nullable reference set NULL, a row
 * inserted under a fresh key, link rows deleted. Each is recorded as an Edit (collection: the table;
 * id: the row's first key value), for editsTouching().
 */
export class HandEditor {
  /** Every hand edit applied, all rounds. */
  readonly applied: Edit[] = [];

  constructor(
    private readonly model: PipelineModel,
    private readonly url: string,
    private readonly rng: Rng,
    private readonly scope: HandScope = {},
  ) {}

  /** Applies `count` hand edits, numbered as round `round`; returns them. */
  async applyRound(round: number, count: number): Promise<Edit[]> {
    const client = new pg.Client({ connectionString: this.url });
    await client.connect();
    const edits: Edit[] = [];
    try {
      for (let attempts = 0; edits.length < count && attempts < count * 20; attempts++) {
        const kind = this.rng.weighted(this.scope.kinds ? HAND_WEIGHTS.filter(([k]) => this.scope.kinds!.includes(k)) : HAND_WEIGHTS);
        const made = await this.applyOne(client, kind);
        if (!made) continue;
        const edit: Edit = { round, n: edits.length + 1, kind, ...made };
        edits.push(edit);
        this.applied.push(edit);
      }
    } finally {
      await client.end();
    }
    return edits;
  }

  private applyOne(client: pg.Client, kind: HandKind): Promise<Omit<Edit, 'round' | 'n' | 'kind'> | null> {
    switch (kind) {
      case 'pg_delete':
        return this.deleteRow(client, this.pickTable(() => true));
      case 'pg_update':
        return this.updateColumn(client);
      case 'pg_null_ref':
        return this.nullReference(client);
      case 'pg_insert':
        return this.insertRow(client);
      case 'pg_delete_link':
        return this.deleteLinks(client);
    }
  }

  private table(name: string): TableModel {
    return this.model.tables.get(name)!;
  }

  /** A random table `accept` takes whose rows the scope lets hand edits touch; null when none. */
  private pickTable(accept: (t: TableModel) => boolean): TableModel | null {
    const names = this.model.loadOrder.filter((t) => accept(this.table(t)) && this.rowScope(this.table(t)) !== null);
    return names.length === 0 ? null : this.table(this.rng.pick(names));
  }

  /** The scope's condition on a row `x` of the table (default: every row), or null: none of its rows. */
  private rowScope(table: TableModel): string | null {
    return this.scope.rows ? this.scope.rows(table) : 'true';
  }

  private keyText(table: TableModel, row: RowValues): string {
    return table.mergeKey.map((c) => row[c] ?? '').join(',');
  }

  /** The edit's record: its table, the row's first key value, and every 24-hex id the row holds. */
  private made(table: TableModel, row: RowValues, detail: string, others: readonly RowValues[] = []): Omit<Edit, 'round' | 'n' | 'kind'> {
    const ids = [row, ...others].flatMap((r) => Object.values(r).filter((v): v is string => v !== null && HEX.test(v)));
    const key = this.keyText(table, row);
    return { collection: table.name, id: row[table.mergeKey[0]!] ?? key, detail: `(${key}) ${detail}`, touches: [...new Set(ids)], keys: table.mergeKey.length > 1 ? [key] : [] };
  }

  /**
   * A random row (`where`: a condition on x) the scope lets hand edits touch (`scoped`; a row a
   * reference may point at need not be), in key order so a seed replays; null when none.
   */
  private async someRow(client: pg.Client, table: TableModel, where = 'true', scoped = true): Promise<RowValues | null> {
    const scope = scoped ? this.rowScope(table) : 'true';
    if (scope === null) return null;
    const from = `FROM ${pg.escapeIdentifier(table.name)} AS x WHERE ${where} AND ${scope}`;
    const n = Number((await client.query<{ n: string }>(`SELECT count(*) AS n ${from}`)).rows[0]!.n);
    if (n === 0) return null;
    const order = table.mergeKey.map((c) => `x.${pg.escapeIdentifier(c)}::text COLLATE "C"`).join(', ');
    const r = await client.query<{ j: RowValues }>(`SELECT ${textValues('x')} AS j ${from} ORDER BY ${order} OFFSET $1 LIMIT 1`, [this.rng.below(n)]);
    return r.rows[0]!.j;
  }

  private keyMatch(table: TableModel, offset: number): string {
    return table.mergeKey.map((c, i) => `${pg.escapeIdentifier(c)}::text = $${offset + i}`).join(' AND ');
  }

  /** A row deleted, and every row that references it followed as a load follows a deleted row. */
  private async deleteRow(client: pg.Client, table: TableModel | null): Promise<Omit<Edit, 'round' | 'n' | 'kind'> | null> {
    if (!table) return null;
    const name = table.name;
    const row = await this.someRow(client, table);
    if (!row) return null;
    await client.query('BEGIN');
    try {
      await client.query('SET CONSTRAINTS ALL DEFERRED');
      await client.query(`DELETE FROM ${pg.escapeIdentifier(name)} WHERE ${this.keyMatch(table, 1)}`, table.mergeKey.map((c) => row[c]));
      const followed = await this.follow(client, name, [row]);
      await client.query('COMMIT');
      const note = followed.deleted.length + followed.nulled > 0 ? `, ${followed.deleted.length} referencing row(s) deleted, ${followed.nulled} reference(s) NULLed` : '';
      return this.made(table, row, `deleted by hand${note}`, followed.deleted);
    } catch (e) {
      await client.query('ROLLBACK');
      throw e;
    }
  }

  /** The rows referencing `rows` of `name`: set_null references NULLed, the others deleted (and followed in turn). */
  private async follow(client: pg.Client, name: string, rows: readonly RowValues[]): Promise<{ deleted: RowValues[]; nulled: number }> {
    const out = { deleted: [] as RowValues[], nulled: 0 };
    for (const child of this.model.loadOrder.map((t) => this.table(t))) {
      for (const column of child.columns.filter((c) => c.foreignKey?.table === name)) {
        const values = rows.map((r) => r[column.foreignKey!.column]).filter((v) => v !== null);
        if (values.length === 0) continue;
        const col = pg.escapeIdentifier(column.name);
        const target = `${pg.escapeIdentifier(child.name)} AS x WHERE x.${col}::text = ANY($1::text[])`;
        if (column.foreignKey!.onMissing === 'set_null' && column.nullable) {
          out.nulled += (await client.query(`UPDATE ${pg.escapeIdentifier(child.name)} SET ${col} = NULL WHERE ${col}::text = ANY($1::text[])`, [values])).rowCount ?? 0;
          continue;
        }
        const gone = (await client.query<{ j: RowValues }>(`DELETE FROM ${target} RETURNING ${textValues('x')} AS j`, [values])).rows.map((r) => r.j);
        out.deleted.push(...gone);
        const deeper = await this.follow(client, child.name, gone);
        out.deleted.push(...deeper.deleted);
        out.nulled += deeper.nulled;
      }
    }
    return out;
  }

  /** Columns a hand edit may change: not in the key, not a reference, not PostgreSQL's own numbering. */
  private plainColumns(table: TableModel): ColumnModel[] {
    return table.columns.filter((c) => !table.mergeKey.includes(c.name) && !c.foreignKey && c.sqlType.kind !== 'serial' && newValue(c) !== null);
  }

  /** One column of a random row set to another value of its type. */
  private async updateColumn(client: pg.Client): Promise<Omit<Edit, 'round' | 'n' | 'kind'> | null> {
    const table = this.pickTable((t) => this.plainColumns(t).length > 0);
    if (!table) return null;
    const column = this.rng.pick(this.plainColumns(table));
    const row = await this.someRow(client, table);
    if (!row) return null;
    const col = pg.escapeIdentifier(column.name);
    const r = await client.query<{ v: string | null }>(
      `UPDATE ${pg.escapeIdentifier(table.name)} SET ${col} = ${newValue(column)} WHERE ${this.keyMatch(table, 1)} RETURNING ${col}::text AS v`,
      table.mergeKey.map((c) => row[c]),
    );
    return this.made(table, row, `${column.name}: ${row[column.name]} → ${r.rows[0]?.v ?? null}`);
  }

  /** A nullable reference of a random row set NULL (the referenced row stays). */
  private async nullReference(client: pg.Client): Promise<Omit<Edit, 'round' | 'n' | 'kind'> | null> {
    const nullable = (t: TableModel) => t.columns.filter((c) => c.foreignKey && c.nullable && !t.mergeKey.includes(c.name));
    const table = this.pickTable((t) => nullable(t).length > 0);
    if (!table) return null;
    const column = this.rng.pick(nullable(table));
    const col = pg.escapeIdentifier(column.name);
    const row = await this.someRow(client, table, `x.${col} IS NOT NULL`);
    if (!row) return null;
    await client.query(`UPDATE ${pg.escapeIdentifier(table.name)} SET ${col} = NULL WHERE ${this.keyMatch(table, 1)}`, table.mergeKey.map((c) => row[c]));
    return this.made(table, row, `${column.name}: ${row[column.name]} → NULL`);
  }

  /**
   * A copy of a random row under a key no document gives: a fresh ObjectId for an upsert table's id;
   * for a link or dedupe table another existing referenced row in one key column (or a day years
   * away), so the row's references hold. Null when the new key is taken.
   */
  private async insertRow(client: pg.Client): Promise<Omit<Edit, 'round' | 'n' | 'kind'> | null> {
    const table = this.pickTable(() => true);
    if (!table) return null;
    const row = await this.someRow(client, table);
    if (!row) return null;
    const changeable = table.mergeKey.map((c) => table.columns.find((x) => x.name === c)!).filter((c) => c.name !== table.explode?.parentColumn && (c.foreignKey || c.sqlType.kind === 'date' || c.name === 'id'));
    if (changeable.length === 0) return null;
    const column = this.rng.pick(changeable);
    let value: string;
    if (column.foreignKey) {
      const ref = await this.someRow(client, this.table(column.foreignKey.table), 'true', false);
      if (!ref) return null;
      value = ref[column.foreignKey.column]!;
    } else if (column.sqlType.kind === 'date') {
      value = (await client.query<{ d: string }>(`SELECT ($1::date + $2::int)::text AS d`, [row[column.name], this.rng.int(3000, 6000)])).rows[0]!.d;
    } else value = new ObjectId().toHexString();
    const columns = table.columns.filter((c) => c.sqlType.kind !== 'serial').map((c) => c.name);
    const names = columns.map((c) => pg.escapeIdentifier(c)).join(', ');
    const values = columns.map((c) => (c === column.name ? `$1::${column.sqlTypeText}` : `x.${pg.escapeIdentifier(c)}`)).join(', ');
    const r = await client.query(
      `INSERT INTO ${pg.escapeIdentifier(table.name)} (${names}) SELECT ${values} FROM ${pg.escapeIdentifier(table.name)} AS x WHERE ${this.keyMatch(table, 2)} ON CONFLICT DO NOTHING`,
      [value, ...table.mergeKey.map((c) => row[c])],
    );
    if (r.rowCount === 0) return null;
    const inserted = { ...row, [column.name]: value };
    return this.made(table, inserted, `inserted by hand (a copy of (${this.keyText(table, row)}))`, [row]);
  }

  /** Some or all of the link rows of one parent deleted. */
  private async deleteLinks(client: pg.Client): Promise<Omit<Edit, 'round' | 'n' | 'kind'> | null> {
    const table = this.pickTable((t) => t.explode !== null);
    if (!table) return null;
    const row = await this.someRow(client, table);
    if (!row) return null;
    const parent = pg.escapeIdentifier(table.explode!.parentColumn);
    const all = this.rng.chance(0.3);
    const where = all ? `${parent}::text = $1` : this.keyMatch(table, 1);
    const r = await client.query(`DELETE FROM ${pg.escapeIdentifier(table.name)} WHERE ${where}`, all ? [row[table.explode!.parentColumn]] : table.mergeKey.map((c) => row[c]));
    return this.made(table, row, all ? `every link of the parent deleted by hand (${r.rowCount})` : 'link deleted by hand');
  }
}

/** SQL giving a column another value of its type than the one it holds (null: a type not handled). */
function newValue(column: ColumnModel): string | null {
  const col = pg.escapeIdentifier(column.name);
  switch (column.sqlType.kind) {
    case 'varchar':
    case 'text': {
      // A column narrower than the words (a VARCHAR(10) the evolution proof adds or narrows to) gets shorter ones.
      const short = column.sqlType.kind === 'varchar' && column.sqlType.length !== null && column.sqlType.length < 'edited by hand'.length;
      const [a, b] = short ? ['hand', 'again'] : ['edited by hand', 'edited again'];
      return `CASE WHEN ${col} = '${a}' THEN '${b}' ELSE '${a}' END`;
    }
    case 'smallint':
    case 'integer':
    case 'bigint':
    case 'numeric':
      return `CASE WHEN ${col} = 1 THEN 2 ELSE 1 END`;
    case 'boolean':
      return `NOT coalesce(${col}, false)`;
    case 'timestamp':
      return `coalesce(${col}, TIMESTAMP '2020-01-01') + INTERVAL '1 hour'`;
    case 'date':
      return `coalesce(${col}, DATE '2020-01-01') + 1`;
    default:
      return null;
  }
}

/** The row `alias` as a JSON object of its columns' values as text (to_jsonb's: timestamps with a T). */
function textValues(alias: string): string {
  return `(SELECT jsonb_object_agg(key, value) FROM jsonb_each_text(to_jsonb(${alias})))`;
}

// ── what etl diff --deep must print, and etl repair ──────────────────────────────────────────────

/** The pipeline.yaml a test's commands read (the shipped one, or one a test edits) and its model. */
export interface Mapping {
  readonly file: string;
  readonly model: PipelineModel;
}

/** The shipped pipeline.yaml, as `Mirror.open` resolved it. */
export const shipped = (m: Mirror): Mapping => ({ file: PIPELINE, model: m.model });

/** `etl diff` or `etl repair` against the test's MongoDB and the incremental database (and staging), with `mapping` and the test's environment. */
export function inspectIncremental(m: Mirror, command: 'diff' | 'repair', mapping: Mapping, extra: readonly string[]): Promise<CliResult> {
  const staging = command === 'repair' ? ['--staging', m.incrementalStaging] : [];
  return etl([command, '--mongo-url', m.mongo.url, '--mongo-db', m.mongo.name, '--database-url', m.incrementalUrl, '--pipeline', mapping.file, ...staging, ...extra], { env: m.env });
}

/** What `etl diff --deep --json` prints (the parts these tests read). */
export interface DiffJson {
  readonly identical: boolean;
  readonly tables: readonly DiffFigures[];
  readonly totals: { readonly tables: number; readonly differing: number; readonly missing: number; readonly extra: number; readonly different: number };
}

export async function deepDiff(m: Mirror, mapping: Mapping): Promise<{ code: number | null; report: DiffJson; stderr: string }> {
  const r = await inspectIncremental(m, 'diff', mapping, ['--deep', '--json', '--limit', '20']);
  assert.ok(r.code === 0 || r.code === 1, `etl diff --deep failed (${r.code}):\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, STACK_LINE, `etl diff --deep printed a stack trace:\n${r.stderr}`);
  return { code: r.code, report: JSON.parse(r.stdout) as DiffJson, stderr: r.stderr };
}

/** What diff must print for one table, with the keys behind each figure (for the failure message). */
interface Expected {
  readonly missing: string[];
  readonly extra: string[];
  readonly different: string[];
  /** Keys the truth counts but diff, by the README, does not: `<key> (<why>)`. */
  readonly notDifferences: string[];
}

/** The values of the set of a referenced column in the incremental database, cached per round. */
type Present = (table: string, column: string) => Promise<Set<string>>;

function presentIn(url: string, model: PipelineModel): Present {
  const cache = new Map<string, Promise<Set<string>>>();
  return (table, column) => {
    const k = `${table}.${column}`;
    if (!cache.has(k)) {
      const key = model.tables.get(table)!.mergeKey;
      cache.set(k, keyedRows(url, table, key).then((rows) => new Set([...rows.values()].map((r) => r.values[column]!).filter((v) => v !== null))));
    }
    return cache.get(k)!;
  };
}

/**
 * The keys of PostgreSQL rows that belong to a document transform rejects today (the reference
 * run's transform/<table>.rejects.ndjson, its documents read from MongoDB): diff lists those as
 * rejected, never as extra (README: "a PostgreSQL row with their key is not extra (the document
 * exists)"). An upsert table's row is keyed by the _id; a dedupe table's by the key the document
 * names; a link table's by each current item of the parent, or, for a parent refused whole
 * (not_an_array), every link of the parent (`parents`).
 */
async function rejectedKeys(table: TableModel, folder: string, db: Db): Promise<{ keys: Set<string>; parents: Set<string> }> {
  const text = await readFile(path.join(folder, 'transform', `${table.name}.rejects.ndjson`), 'utf8').catch(() => '');
  const keys = new Set<string>();
  const parents = new Set<string>();
  for (const line of text.split('\n').filter(Boolean)) {
    const reject = JSON.parse(line) as { collection: string; _id: string; reason: string };
    if (table.strategy === 'upsert') keys.add(`(${reject._id})`);
    else if (table.strategy === 'explode' && reject.reason === 'not_an_array') parents.add(reject._id);
    else {
      const doc = await db.collection(reject.collection).findOne({ _id: ObjectId.isValid(reject._id) ? new ObjectId(reject._id) : (reject._id as never) });
      if (!doc) continue;
      for (const k of table.strategy === 'dedupe' ? dedupeKeys(reject.collection, doc) : linkKeys(table, doc)) keys.add(`(${k})`);
    }
  }
  return { keys, parents };
}

/** The (parent, item[, constant]) keys of a document's current array items, as the key's ROW text. */
function linkKeys(table: TableModel, doc: Document): string[] {
  const spec = table.explode!;
  const idText = (v: unknown) => (v instanceof ObjectId ? v.toHexString() : typeof v === 'string' ? v : null);
  const out: string[] = [];
  for (const array of spec.arrays) {
    const items = doc[array.field];
    if (!Array.isArray(items)) continue;
    for (const item of items) {
      const id = idText(array.itemIdKey && item && typeof item === 'object' && !(item instanceof ObjectId) ? (item as Document)[array.itemIdKey] : item);
      if (id === null) continue;
      const values: Record<string, string> = { ...array.constants, [spec.parentColumn]: idText(doc._id)!, [array.itemColumn]: id };
      out.push(table.mergeKey.map((c) => values[c]).join(','));
    }
  }
  return out;
}

/**
 * What `etl diff --deep` must print for one table, derived from the rows a full run of MongoDB as it
 * is now stages for the table (`staged`: the reference run's transform CSV, before its load checked
 * any reference) against the incremental database, by the README's rules:
 * - a staged row whose reference (on_missing: reject) points at a row PostgreSQL lacks is refused,
 *   not missing: a load refuses it too (diff --help); its key in PostgreSQL is compared as any row;
 * - a set_null reference whose row PostgreSQL lacks is compared as the NULL a load would write;
 * - a PostgreSQL row of a document transform rejects today is not extra (the document exists);
 * - references are judged against the rows PostgreSQL holds, not against a full run's: a link to an
 *   event deleted from MongoDB (still in PostgreSQL) is no difference of the link table until the
 *   event's row goes, as a load judges it; etl repair removes both (checked after it, against the
 *   reference database itself).
 */
async function expectedFigures(table: TableModel, incremental: Map<string, KeyedRow>, staged: Map<string, KeyedRow>, present: Present, rejected: { keys: Set<string>; parents: Set<string> }): Promise<Expected> {
  const out: Expected = { missing: [], extra: [], different: [], notDifferences: [] };
  const references = table.stagedColumns.filter((c) => c.foreignKey);
  const absent = async (column: string, value: string | null | undefined): Promise<boolean> => {
    const fk = table.stagedColumns.find((c) => c.name === column)!.foreignKey!;
    return value !== null && value !== undefined && !(await present(fk.table, fk.column)).has(value);
  };
  for (const [key, row] of staged) {
    const mine = incremental.get(key);
    if (!mine) {
      let refused: string | null = null;
      for (const c of references.filter((x) => x.foreignKey!.onMissing === 'reject')) if (!refused && (await absent(c.name, row.values[c.name]))) refused = c.name;
      if (refused) out.notDifferences.push(`${key} (refused: ${refused} ${row.values[refused]})`);
      else out.missing.push(key);
      continue;
    }
    const columns: string[] = [];
    const nulled: string[] = [];
    for (const c of table.stagedColumns.filter((x) => !table.mergeKey.includes(x.name))) {
      let want = row.values[c.name] ?? null;
      if (c.foreignKey?.onMissing === 'set_null' && (await absent(c.name, want))) {
        nulled.push(c.name);
        want = null;
      }
      if (want !== (mine.values[c.name] ?? null)) columns.push(c.name);
    }
    if (columns.length > 0) out.different.push(`${key} [${columns.join(', ')}]`);
    else if (nulled.length > 0 && nulled.some((c) => row.values[c] !== mine.values[c])) out.notDifferences.push(`${key} (set_null: ${nulled.join(', ')})`);
  }
  for (const [key, row] of incremental) {
    if (staged.has(key)) continue;
    const parent = table.explode ? row.values[table.explode.parentColumn]! : null;
    if (rejected.keys.has(key) || (parent !== null && rejected.parents.has(parent))) out.notDifferences.push(`${key} (rejected)`);
    else out.extra.push(key);
  }
  return out;
}

/**
 * `etl diff --deep` with `mapping`: per table its figures must be the ones derived against the
 * reference run (`expectedFigures`), its exit code and "identical" must agree; a failure names the
 * rows and the edits behind them. Returns what the truth holds, for the test's diagnostics.
 */
export async function assertDiffTrue(m: Mirror, mapping: Mapping, round: number, reference: { url: string; folder: string }, edits: readonly Edit[], context: string): Promise<Tally> {
  const { code, report, stderr } = await deepDiff(m, mapping);
  const present = presentIn(m.incrementalUrl, mapping.model);
  const db = await m.db();
  const wrong: string[] = [];
  let differs = false;
  const tally: Tally = { tables: 0, missing: 0, extra: 0, different: 0, notDifferences: {}, byTable: {} };
  for (const name of mapping.model.loadOrder) {
    const table = mapping.model.tables.get(name)!;
    const mine = await keyedRows(m.incrementalUrl, name, table.mergeKey);
    const staged = await stagedRows(reference.url, reference.folder, name, table.mergeKey);
    const expected = await expectedFigures(table, mine, staged, present, await rejectedKeys(table, reference.folder, db));
    const printed = report.tables.find((t) => t.table === name);
    assert.ok(printed, `round ${round}: diff reports ${name}`);
    const got = { missing: printed.missing.count, extra: printed.extra.count, different: printed.different?.count ?? 0 };
    const want = { missing: expected.missing.length, extra: expected.extra.length, different: expected.different.length };
    differs ||= want.missing + want.extra + want.different > 0;
    count(tally, name, want, expected.notDifferences);
    if (got.missing === want.missing && got.extra === want.extra && got.different === want.different) continue;
    const rows = (label: string, keys: readonly string[]) => keys.slice(0, 8).map((k) => `    ${label} ${k}\n        ${editsTouching(edits, k)}`);
    wrong.push(
      [
        `${name}: diff printed missing ${got.missing}, extra ${got.extra}, different ${got.different}; the truth is missing ${want.missing}, extra ${want.extra}, different ${want.different}`,
        `  diff's samples: ${JSON.stringify({ missing: printed.missing.sample.map((s) => s.key), extra: printed.extra.sample.map((s) => s.key), different: printed.different?.sample.map((s) => [s.key, s.columns]), refused: printed.refused.count, rejected: printed.rejected.count, rejectedInPostgres: printed.rejected.inPostgres })}`,
        ...rows('missing', expected.missing),
        ...rows('extra', expected.extra),
        ...rows('different', expected.different),
        ...rows('not a difference', expected.notDifferences),
      ].join('\n'),
    );
  }
  assert.ok(wrong.length === 0, `round ${round}: etl diff --deep printed figures that are not true in ${wrong.length} table(s):\n${wrong.join('\n')}\n${context}`);
  // diff --help: exit 1 when they differ, 0 when identical.
  assert.equal(code, differs ? 1 : 0, `round ${round}: etl diff --deep exits ${differs ? 1 : 0}:\n${stderr}\n${context}`);
  assert.equal(report.identical, !differs, `round ${round}: diff's "identical"\n${context}`);
  const totals = { tables: mapping.model.loadOrder.length, differing: tally.tables, missing: tally.missing, extra: tally.extra, different: tally.different };
  assert.deepEqual(report.totals && { tables: report.totals.tables, differing: report.totals.differing, missing: report.totals.missing, extra: report.totals.extra, different: report.totals.different }, totals, `round ${round}: diff's totals\n${context}`);
  return tally;
}

/** What a round's diff found, for the test's diagnostics (and to show the proof is not vacuous). */
export interface Tally {
  tables: number;
  missing: number;
  extra: number;
  different: number;
  /** By reason: refused, rejected, set_null. */
  notDifferences: Record<string, number>;
  /** The tables that differ: `missing/extra/different`. */
  byTable: Record<string, string>;
}

function count(tally: Tally, table: string, figures: { missing: number; extra: number; different: number }, notDifferences: readonly string[]): void {
  if (figures.missing + figures.extra + figures.different > 0) {
    tally.tables += 1;
    tally.byTable[table] = `${figures.missing}/${figures.extra}/${figures.different}`;
  }
  tally.missing += figures.missing;
  tally.extra += figures.extra;
  tally.different += figures.different;
  for (const n of notDifferences) {
    const reason = /\((\w+)/.exec(n.slice(n.lastIndexOf(' (')))?.[1] ?? 'other';
    tally.notDifferences[reason] = (tally.notDifferences[reason] ?? 0) + 1;
  }
}

export const describeTally = (t: Tally): string =>
  `${t.tables} table(s) differ: ${t.missing} missing, ${t.extra} extra, ${t.different} different; not differences: ${JSON.stringify(t.notDifferences)}`;

/** What etl diff --deep still finds, per table, each row with the edits that touched it. */
async function stillDiffering(m: Mirror, mapping: Mapping, edits: readonly Edit[]): Promise<string> {
  const { report } = await deepDiff(m, mapping);
  const lines: string[] = ['etl diff --deep now:'];
  for (const t of report.tables.filter((x) => !x.identical)) {
    lines.push(`  ${t.table}: missing ${t.missing.count}, extra ${t.extra.count}, different ${t.different?.count ?? 0}`);
    const samples = [
      ...t.missing.sample.map((s) => ['missing', s.key] as const),
      ...t.extra.sample.map((s) => ['extra', s.key] as const),
      ...(t.different?.sample ?? []).map((s) => ['different', s.key] as const),
    ];
    for (const [label, key] of samples) {
      const text = `(${Object.values(key).join(',')})`;
      lines.push(`    ${label} ${text}\n        ${editsTouching(edits, text)}`);
    }
  }
  return lines.join('\n');
}

/**
 * `etl repair` with `mapping`, sometimes first on a random subset of tables; then every table must
 * equal the reference and `etl diff --deep` find nothing. Returns the steps taken, e.g.
 * `etl repair --tables a,b (exit 0), then etl repair`.
 */
export async function repairAll(m: Mirror, mapping: Mapping, rng: Rng, round: number, reference: string, edits: readonly Edit[], context: string): Promise<string> {
  let steps = '';
  if (rng.chance(0.4)) {
    const subset = mapping.model.loadOrder.filter(() => rng.chance(0.3));
    if (subset.length > 0) {
      const partial = await inspectIncremental(m, 'repair', mapping, ['--tables', subset.join(',')]);
      steps = `etl repair --tables ${subset.join(',')} (exit ${partial.code}), then `;
      assert.equal(partial.code, 0, `round ${round}: etl repair --tables ${subset.join(',')} exits 0:\n${partial.stderr}\n${partial.stdout.slice(-3000)}\n${context}`);
    }
  }
  const full = await inspectIncremental(m, 'repair', mapping, []);
  steps += 'etl repair';
  assert.doesNotMatch(full.stderr, STACK_LINE, `round ${round}: ${steps} printed a stack trace:\n${full.stderr}`);
  if (full.code !== 0) assert.fail(`round ${round}: ${steps} exits 0:\n${full.stderr}\n${full.stdout.slice(-3000)}\n${await stillDiffering(m, mapping, edits)}\n${context}`);
  await assertMirrors(mapping.model, m.incrementalUrl, reference, {
    examples: 5,
    annotate: (row) => editsTouching(edits, row),
    classify: (row) => editKinds(edits, row),
    context: `round ${round}: after ${steps}\n${context}`,
  });
  const after = await deepDiff(m, mapping);
  const nonZero = after.report.tables.filter((t) => t.missing.count + t.extra.count + (t.different?.count ?? 0) > 0).map((t) => `${t.table} ${t.missing.count}/${t.extra.count}/${t.different?.count}`);
  assert.deepEqual(nonZero, [], `round ${round}: etl diff --deep after ${steps} finds nothing (missing/extra/different)\n${context}`);
  assert.equal(after.code, 0, `round ${round}: etl diff --deep exits 0 after ${steps}\n${context}`);
  return steps;
}
