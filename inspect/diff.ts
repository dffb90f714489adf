// `etl diff`: MongoDB as pipeline.yaml maps it, against PostgreSQL, table by table.
//
// The expected side is what a full extract → transform → load of the current documents would leave:
// each document goes through the table's mapping and transform's converters (inspect/expected-rows.ts),
// the records stream into a temporary table by COPY, and the comparison is SQL (inspect/diff-sql.ts). Two collections
// are read at once (diff-lanes.ts); nothing is held in memory but their batches read ahead and a CSV batch a
// table; PostgreSQL does the set work on its disk.
//
// What the figures mean, per table (the key: id for upsert tables, the unique constraint for link
// tables — (user_id, event_id), (user_id, target_id, type) —, the dedupe key for dedupe tables):
//   mongo.rows      rows a load would write (distinct keys)
//   postgres.rows   rows in the table
//   missing         keys expected but absent from PostgreSQL
//   refused         absent too, but a load would refuse them as well: a reference (on_missing:
//                   reject) points at a row PostgreSQL lacks (a dangling id in MongoDB), two
//                   documents claim the row's key (`77` and `"77"`: duplicate_key), or rows of
//                   other keys hold the row's value of another unique constraint (users declaring
//                   [email]: duplicate_value, every holder refused); reported apart, like the load
//                   reports them, and not a difference
//   extra           PostgreSQL keys of no existing document: the document (or array item) is gone;
//                   and keys whose row a load refuses, for a shared value or because two documents
//                   claim them (a full run leaves none)
//   different       --deep: keys on both sides whose mapped columns differ (columns listed)
//   rejected        documents or items transform would refuse (over-long name, bad type…): reported
//                   apart, never as "missing"; a PostgreSQL row with such a key is not "extra" either
//                   (its document exists), it is counted as `rejected.inPostgres` (an older version)
// Documents before the date threshold are never extracted: skipped as `before_date_threshold`, and
// their PostgreSQL rows (from an earlier --full run) are not extra. A table differs when missing,
// extra or different is not zero, or when it cannot be compared (table or key column absent):
// right after a complete load, diff finds nothing, dangling references and type rejects included.
import type pg from 'pg';
import { describeMongo, describePostgres, type MongoConfig, type PostgresConfig } from '../connect/config.ts';
import { connectMongo, type MongoConnection } from '../connect/mongo.ts';
import { beginTransaction, connectPostgres, inTransaction } from '../connect/postgres.ts';
import { redactText } from '../errors/redact.ts';
import { LoadError, SourceError } from '../errors/etl-error.ts';
import { accessHint } from '../errors/codes.ts';
import { isConnectionEnd, RUN_AGAIN_HINT, withEndReason } from '../errors/connection-ended.ts';
import type { PipelineModel, Strategy, TableModel } from '../model/types.ts';
import { readTables, type LiveTable } from '../schema/catalog.ts';
import { tableMapper, type SkipCounts, type TableMapper } from './expected-rows.ts';
import { SharedScan, streamedSource, type ExpectedSource } from './shared-scan.ts';
import { selectTables } from '../model/select-tables.ts';
import { CHANGED, CONTESTED, EXPECTED, EXTRA, keyOf, MISSING, ROWS, TableDiffSql } from './diff-sql.ts';
import { compiled, ROLLBACK, runSql, type CompiledQuery } from '../schema/sql.ts';
import type { RepairScopes } from './repair-scope.ts';
import { DiffLanes, type Turn } from './diff-lanes.ts';

export interface DiffOptions {
  readonly model: PipelineModel;
  readonly mongo: MongoConfig;
  readonly postgres: PostgresConfig;
  readonly secrets?: readonly string[];
  /** Tables to compare (default: every table, in load order). */
  readonly tables?: readonly string[] | null;
  /** Also compare every mapped column of the rows present on both sides. */
  readonly deep?: boolean;
  /** How many keys each list shows (the counts always count everything). Default 10. */
  readonly sampleSize?: number;
  /** What may be printed about the two sides (e.g. "… via SSH"); default from the configs. */
  readonly describe?: { readonly mongo: string; readonly postgres: string };
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: DiffProgress) => void;
  /**
   * `etl repair`: given each comparable table, with its comparison's temporary tables, to list the
   * documents and keys of every differing row in full (inspect/repair-scope.ts).
   */
  readonly repairScopes?: RepairScopes;
}

export type DiffProgress =
  | { readonly kind: 'table_start'; readonly table: string; readonly collection: string }
  | { readonly kind: 'documents'; readonly table: string; readonly documents: number }
  | { readonly kind: 'comparing'; readonly table: string }
  | { readonly kind: 'table_done'; readonly table: string; readonly diff: TableDiff };

/** A row's key: column → PostgreSQL text of the value. */
export type KeyValues = Record<string, string | null>;

export interface TableDiff {
  readonly table: string;
  readonly collection: string;
  readonly strategy: Strategy;
  /** The columns that identify a row. */
  readonly key: readonly string[];
  readonly identical: boolean;
  /** Why the table could not be compared (it then counts as differing). */
  readonly problem: { readonly code: 'table_missing' | 'key_column_missing'; readonly message: string } | null;
  readonly mongo: {
    /** Documents read (after the table's server-side filter). */
    readonly documents: number;
    /** Rows a load would write: distinct keys. */
    readonly rows: number;
    /** Documents or items not turned into rows, by reason (filtered, missing_user, duplicate_in_array, superseded, before_date_threshold). */
    readonly skipped: Readonly<Record<string, number>>;
  };
  readonly postgres: { readonly rows: number | null };
  /** Loadable rows absent from PostgreSQL. */
  readonly missing: { readonly count: number; readonly sample: readonly { readonly key: KeyValues; readonly sourceId: string | null }[] };
  /**
   * Rows absent from PostgreSQL that a load would refuse too: a reference (on_missing: reject)
   * points at a row PostgreSQL does not have (a dangling id in MongoDB). Reported apart, as the
   * load reports them; they do not make the databases differ.
   */
  readonly refused: {
    readonly count: number;
    /** The refused for a missing reference, by the reference column. */
    readonly byColumn: Readonly<Record<string, number>>;
    /** The refused because two documents claim their key (duplicate_key: `77` and `"77"`, load/claims.ts). */
    readonly contested: number;
    /**
     * Tables with a unique constraint other than their key (users declaring [email]) only: the
     * refused because rows of other keys hold their value of it (duplicate_value, every holder refused).
     */
    readonly sharedValues?: number;
    /** `column`: the reference column, the document key column (duplicate_key), or the constraint's columns joined by ", " (duplicate_value). */
    readonly sample: readonly { readonly key: KeyValues; readonly sourceId: string | null; readonly column: string; readonly reason: 'missing_reference' | 'duplicate_key' | 'duplicate_value' }[];
  };
  readonly extra: {
    readonly count: number;
    /** Tables with a unique constraint other than their key only: the extra whose key's row a load refuses for a shared value (duplicate_value). */
    readonly sharedValues?: number;
    /** Tables with a key two documents claim only: the extra of such a key (a load refuses both documents' rows: duplicate_key). */
    readonly contested?: number;
    /** `column` and `reason` only for a key whose row a load refuses for a shared value: the constraint's columns joined by ", ". */
    readonly sample: readonly { readonly key: KeyValues; readonly column?: string; readonly reason?: 'duplicate_value' }[];
  };
  /** null unless --deep. */
  readonly different: {
    readonly count: number;
    readonly byColumn: Readonly<Record<string, number>>;
    /** Staged columns absent from the live table (drift): not compared. */
    readonly notCompared: readonly string[];
    readonly sample: readonly { readonly key: KeyValues; readonly sourceId: string; readonly columns: readonly string[] }[];
  } | null;
  readonly rejected: {
    readonly count: number;
    readonly byReason: Readonly<Record<string, number>>;
    /** Rejected rows whose key PostgreSQL still holds (loaded from an earlier, valid version). */
    readonly inPostgres: number;
    readonly sample: readonly { readonly sourceId: string; readonly column: string | null; readonly reason: string | null }[];
  };
}

export interface DiffReport {
  readonly identical: boolean;
  readonly deep: boolean;
  readonly source: string;
  readonly destination: string;
  readonly sampleSize: number;
  readonly startedAt: string;
  readonly endedAt: string;
  readonly tables: readonly TableDiff[];
  readonly totals: {
    readonly tables: number;
    readonly differing: number;
    readonly missing: number;
    readonly extra: number;
    readonly different: number;
    readonly rejected: number;
    readonly refused: number;
  };
}

/**
 * PostgreSQL connections: the tables in flight at once (diff-lanes.ts). A table filled keeps its lane
 * until its turn to compare, and a shared scan's other tables wait for it on lanes of their own
 * (users and days feed three each), so while the largest collection (coachinglogbooks) is read, the
 * second reader goes through the five collections after it (nine tables) only with this many lanes.
 */
const LANES = 10;
/** Collections read at once: a second cursor nearly doubles what FerretDB delivers (diff-lanes.ts). */
const READERS = 2;

/**
 * Up to LANES connections, opened at once. Two are needed; a server that refuses the others for
 * want of slots (max_connections, a role's CONNECTION LIMIT: SQLSTATE 53300) gets a diff on fewer
 * lanes, slower but the same report. Any other failure is the diff's.
 */
async function openLanes(postgres: PostgresConfig, secrets: readonly string[]): Promise<pg.Client[]> {
  const needed = [await connectPostgres(postgres, secrets)];
  const rest = await Promise.allSettled(Array.from({ length: LANES - 1 }, () => connectPostgres(postgres, secrets)));
  const opened = rest.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const refused = rest.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  const fatal = refused.find((e) => !outOfSlots(e)) ?? (opened.length === 0 ? refused[0] : undefined);
  if (fatal !== undefined) {
    await Promise.allSettled([...needed, ...opened].map((c) => c.end()));
    throw fatal;
  }
  return [...needed, ...opened];
}

function outOfSlots(error: unknown): boolean {
  const cause = error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
  return cause?.code === '53300';
}

export async function runDiff(options: DiffOptions): Promise<DiffReport> {
  const { model, signal } = options;
  const secrets = options.secrets ?? [];
  const sampleSize = Math.max(0, Math.trunc(options.sampleSize ?? 10));
  const names = selectTables(model, options.tables);
  const startedAt = new Date().toISOString();
  signal?.throwIfAborted();

  const clients: pg.Client[] = [];
  let mongo: MongoConnection | null = null;
  let lanes: DiffLanes | null = null;
  const cleanups: Promise<void>[] = [];
  try {
    clients.push(...(await openLanes(options.postgres, secrets)));
    mongo = await connectMongo(options.mongo, secrets);
    lanes = new DiffLanes(clients, READERS, signal);
    // The jobs see the lanes' signal: aborted by the caller, or by the first job that fails.
    const inner: DiffOptions = { ...options, signal: lanes.signal };
    // Every table of the model: set_null references are looked up in tables not being compared.
    const first = clients[0]!;
    const live = await inTransaction(first, () => readTables(first, [...model.loadOrder]));
    const byName = new Map<string, TableDiff>();
    const run: GroupRun = { mongo, lanes, options: inner, live, secrets, sampleSize, byName, cleanups, signal };
    await startTables(collectionGroups(model, names), names, run);
    await lanes.finish();
    await Promise.all(cleanups);
    return diffReport(options, names.map((n) => byName.get(n)!), sampleSize, startedAt);
  } finally {
    await lanes?.settle();
    await Promise.allSettled(cleanups);
    await mongo?.close().catch(() => undefined);
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

/** What the tables of every collection share while a diff runs. */
interface GroupRun {
  readonly mongo: MongoConnection;
  readonly lanes: DiffLanes;
  /** The caller's options with the lanes' signal. */
  readonly options: DiffOptions;
  readonly live: Awaited<ReturnType<typeof readTables>>;
  readonly secrets: readonly string[];
  readonly sampleSize: number;
  readonly byName: Map<string, TableDiff>;
  /** Closing each collection's shared scan once its tables' COPYs have read it. */
  readonly cleanups: Promise<void>[];
  /** The caller's signal (the lanes' own aborts reach the jobs through `options`). */
  readonly signal: AbortSignal | undefined;
}

/**
 * Starts the comparison of every table on the lanes, in load order (each table's result lands in
 * `byName`). The comparisons keep that order (diff-lanes.ts), which repair's scopes rely on: a table
 * learns which rows of the tables it references the repair brings back (repair-scope.ts), and a table
 * read with a collection that comes first (users_contents_reads with contents) references tables of
 * later collections (users). A collection's tables still share one scan, opened at its first table.
 */
async function startTables(groups: readonly { collection: string; tables: string[] }[], names: readonly string[], run: GroupRun): Promise<void> {
  const { options, lanes } = run;
  const open = new Map<string, { sources: Sources; fills: Promise<void>[]; left: number }>();
  const close = (g: { sources: Sources; fills: Promise<void>[] }) => run.cleanups.push(Promise.all(g.fills).then(() => g.sources.close()));
  try {
    for (const name of names) {
      run.signal?.throwIfAborted();
      const table = options.model.tables.get(name)!;
      let g = open.get(table.collection);
      if (!g) {
        const group = groups.find((x) => x.collection === table.collection)!;
        g = { sources: expectedSources(run.mongo, group, options, run.secrets), fills: [], left: group.tables.length };
        open.set(table.collection, g);
      }
      const sources = g.sources;
      const { fill } = await lanes.start(async (lane, turn) => {
        options.onProgress?.({ kind: 'table_start', table: name, collection: table.collection });
        const diff = await diffTable(lane, sources.of(name), table, run.live, options, run.sampleSize, turn);
        run.byName.set(name, diff);
        options.onProgress?.({ kind: 'table_done', table: name, diff });
      }, sources.reads(name));
      g.fills.push(fill);
      // A shared scan's files go once its tables' COPYs have read them (other collections may be read meanwhile).
      if (--g.left === 0) {
        close(g);
        open.delete(table.collection);
      }
    }
  } finally {
    // Stopped half-way: the scans opened are closed all the same once their started tables are done.
    for (const g of open.values()) close(g);
  }
}

/** The report of the compared tables, totals summed. */
function diffReport(options: DiffOptions, tables: TableDiff[], sampleSize: number, startedAt: string): DiffReport {
  const sum = (f: (t: TableDiff) => number) => tables.reduce((a, t) => a + f(t), 0);
  const differing = tables.filter((t) => !t.identical).length;
  return {
    identical: differing === 0,
    deep: options.deep === true,
    source: options.describe?.mongo ?? describeMongo(options.mongo),
    destination: options.describe?.postgres ?? describePostgres(options.postgres),
    sampleSize,
    startedAt,
    endedAt: new Date().toISOString(),
    tables,
    totals: {
      tables: tables.length,
      differing,
      missing: sum((t) => t.missing.count),
      extra: sum((t) => t.extra.count),
      different: sum((t) => t.different?.count ?? 0),
      rejected: sum((t) => t.rejected.count),
      refused: sum((t) => t.refused.count),
    },
  };
}

/** The compared tables of each collection, collections in the order of their first table. */
function collectionGroups(model: PipelineModel, names: readonly string[]): { collection: string; tables: string[] }[] {
  const groups = new Map<string, string[]>();
  for (const name of names) {
    const collection = model.tables.get(name)!.collection;
    groups.set(collection, [...(groups.get(collection) ?? []), name]);
  }
  return [...groups].map(([collection, tables]) => ({ collection, tables }));
}

interface Sources {
  /** Whether the table's fill reads MongoDB (a shared scan's other tables COPY its files). */
  reads(table: string): boolean;
  of(table: string): ExpectedSource;
  close(): Promise<void>;
}

/** A lone table streams its own scan; several tables of one collection share one scan (shared-scan.ts). */
function expectedSources(mongo: MongoConnection, group: { collection: string; tables: string[] }, options: DiffOptions, secrets: readonly string[]): Sources {
  const { model } = options;
  const scan = { model, signal: options.signal, secrets, onDocuments: (table: string, documents: number) => options.onProgress?.({ kind: 'documents', table, documents }) };
  const mappers = group.tables.map((t) => tableMapper(model.tables.get(t)!, model));
  const collection = model.collections.find((c) => c.name === group.collection);
  if (mappers.length === 1 || !collection) {
    const streamed = new Map(mappers.map((m) => [m.table.name, streamedSource(mongo, m, scan)]));
    return { reads: () => true, of: (t) => streamed.get(t)!, close: async () => undefined };
  }
  const shared = new SharedScan(mongo, collection, mappers, scan);
  return { reads: (t) => t === group.tables[0], of: (t) => shared.source(t), close: () => shared.close() };
}

async function diffTable(
  client: pg.Client,
  source: ExpectedSource,
  table: TableModel,
  liveTables: ReadonlyMap<string, LiveTable>,
  options: DiffOptions,
  sampleSize: number,
  turn: Turn,
): Promise<TableDiff> {
  const live = liveTables.get(table.name) ?? null;
  const problem = comparabilityProblem(table, live);
  // Without the live table, the SQL still needs a shape: the model's own stands in (nothing is read from it).
  const shape: LiveTable = live ?? { name: table.name, columns: [], primaryKey: null, uniques: [], foreignKeys: [] };
  const q = new TableDiffSql(table, shape, options.model, liveTables);
  const run = new DiffQueries(client, q, sampleSize);
  const mapper = tableMapper(table, options.model);

  await runSql(client, beginTransaction('REPEATABLE READ'));
  try {
    await runSql(client, ISO_DATES);
    await runSql(client, SMALL_STATISTICS);
    await runSql(client, q.createExpected());
    const { documents, skipped } = await source(client, q);
    await turn();
    options.onProgress?.({ kind: 'comparing', table: table.name });
    const expected = await expectedFigures(run, mapper, skipped);
    const found = problem === null ? await compareWithLive(run, expected.rejected.count, options.deep === true) : await nothingToCompare(run, live !== null, expected.rows);
    const identical = problem === null && found.missing.count === 0 && found.extra.count === 0 && (found.different?.count ?? 0) === 0;
    if (problem === null) await options.repairScopes?.collect(client, q, { identical, deep: options.deep === true });
    return tableDiff(table, q.keyNames, { identical, problem, documents, expected, found });
  } catch (cause) {
    throw diffFailure(withEndReason(client, cause), table, options);
  } finally {
    // The temporary tables go with the transaction; nothing else was written.
    await runSql(client, ROLLBACK).catch(() => undefined);
  }
}

/** A table's comparison as reported, from what the model expects and what PostgreSQL holds. */
function tableDiff(
  table: TableModel,
  key: TableDiff['key'],
  c: { identical: boolean; problem: TableDiff['problem']; documents: number; expected: ExpectedFigures; found: LiveFigures },
): TableDiff {
  const { expected, found } = c;
  return {
    table: table.name,
    collection: table.collection,
    strategy: table.strategy,
    key,
    identical: c.identical,
    problem: c.problem,
    mongo: { documents: c.documents, rows: expected.rows, skipped: sortedCounts(expected.skipped) },
    postgres: { rows: found.postgresRows },
    missing: found.missing,
    refused: found.refused,
    extra: found.extra,
    different: found.different,
    rejected: { count: expected.rejected.count, byReason: expected.rejected.byReason, inPostgres: found.rejectedInPostgres, sample: expected.rejected.sample },
  };
}

/** What a failed comparison throws: a source error or an abort as it came, anything else as a LoadError naming the table. */
function diffFailure(cause: unknown, table: TableModel, options: DiffOptions): unknown {
  if (cause instanceof SourceError || options.signal?.aborted) return cause;
  const e = cause as { message?: string; code?: string };
  const hint = accessHint(cause) ?? (isConnectionEnd(cause) ? RUN_AGAIN_HINT : null);
  return new LoadError('diff_failed', `comparing "${table.name}" failed: ${redactText(e.message ?? String(cause), options.secrets ?? [])}`, {
    ...(hint ? { hint } : {}),
    cause,
    context: { table: table.name },
  });
}

/** Why the table cannot be compared (absent, or a key column absent), or null. */
function comparabilityProblem(table: TableModel, live: LiveTable | null): TableDiff['problem'] {
  if (!live) return { code: 'table_missing', message: `table "${table.name}" does not exist in PostgreSQL (run \`etl schema\`)` };
  const absent = keyOf(table).filter((k) => !live.columns.some((c) => c.name === k));
  if (absent.length === 0) return null;
  return {
    code: 'key_column_missing',
    message: `key column${absent.length > 1 ? 's' : ''} ${absent.map((c) => `"${c}"`).join(', ')} of "${table.name}" missing in PostgreSQL (see \`etl schema --check\`)`,
  };
}

/** The text forms compared and shown use ISO dates whatever the server's defaults (a table's comparison is one REPEATABLE READ snapshot). */
const ISO_DATES = compiled(`SET LOCAL DateStyle = 'ISO, YMD'`);
/**
 * The temporary tables' ANALYZE (the planner's row counts and distinct values for the joins) from a
 * sample of 3,000 rows instead of 30,000: a third of the comparisons' SQL time went to it, and the
 * plans need sizes, not fine histograms. Results do not depend on it.
 */
const SMALL_STATISTICS = compiled('SET LOCAL default_statistics_target = 10');

/** The queries of one table's comparison: counts, and samples of at most sampleSize rows. */
class DiffQueries {
  constructor(
    private readonly client: pg.Client,
    readonly q: TableDiffSql,
    private readonly sampleSize: number,
  ) {}

  async exec(sql: CompiledQuery): Promise<void> {
    await runSql(this.client, sql);
  }

  async rows<T extends object>(sql: CompiledQuery): Promise<T[]> {
    return (await runSql<T>(this.client, sql)).rows;
  }

  async count(sql: CompiledQuery): Promise<number> {
    return Number((await runSql<{ n: string }>(this.client, sql)).rows[0]?.n ?? 0);
  }

  /** The sample (its statement built for at most sampleSize rows), when one is asked for and there is something to show. */
  async sample<T>(sql: (limit: number) => CompiledQuery, count: number, map: (row: Record<string, unknown>) => T): Promise<T[]> {
    if (!this.sampleSize || !count) return [];
    return (await runSql<Record<string, unknown>>(this.client, sql(this.sampleSize))).rows.map(map);
  }

  /** `{ i, n }` rows (a staged column's index, a count) → column name → count. */
  async byColumn(sql: CompiledQuery): Promise<Record<string, number>> {
    return Object.fromEntries((await runSql<{ i: number; n: string }>(this.client, sql)).rows.map((r) => [this.q.columns[r.i]!.name, Number(r.n)]));
  }

  keyed(r: Record<string, unknown>): { key: KeyValues; sourceId: string | null } {
    return { key: this.q.keyOf(r), sourceId: (r.src as string | null) ?? null };
  }
}

interface ExpectedFigures {
  /** Rows a load would write (distinct keys). */
  readonly rows: number;
  readonly skipped: Record<string, number>;
  readonly rejected: Omit<TableDiff['rejected'], 'inPostgres'>;
}

/** One row per key, and what the MongoDB side yields that is not a row. */
async function expectedFigures(run: DiffQueries, mapper: TableMapper, skipped: SkipCounts): Promise<ExpectedFigures> {
  const { q } = run;
  await run.exec(q.createContested());
  await run.exec(q.createRows());
  await run.exec(compiled(`ANALYZE ${EXPECTED}`));
  await run.exec(compiled(`ANALYZE ${ROWS}`));
  const statuses = await run.rows<{ status: string; n: string; documents: string }>(q.statusCounts());
  const byStatus = new Map(statuses.map((r) => [r.status, { n: Number(r.n), documents: Number(r.documents) }]));
  const rows = await run.count(q.count(ROWS));
  // Rows of keys two documents claim are refused, not folded into another row.
  const folded = (byStatus.get('row')?.n ?? 0) - (await run.count(q.contestedRecords())) - rows;
  const skippedAll: Record<string, number> = { ...skipped };
  if (folded > 0) skippedAll[mapper.foldedAs] = folded;
  const outside = byStatus.get('outside_threshold')?.documents ?? 0;
  if (outside > 0) skippedAll.before_date_threshold = outside;
  const count = (byStatus.get('rejected')?.n ?? 0) + (byStatus.get('rejected_document')?.n ?? 0);
  const byReason = Object.fromEntries((await run.rows<{ reason: string; n: string }>(q.rejectedByReason())).map((r) => [r.reason, Number(r.n)]));
  const sample = await run.sample((n) => q.rejectedSample(n), count, (r) => ({ sourceId: r.src as string, column: r.col as string | null, reason: r.reason as string | null }));
  return { rows, skipped: skippedAll, rejected: { count, byReason, sample } };
}

interface LiveFigures {
  readonly postgresRows: number | null;
  readonly missing: TableDiff['missing'];
  readonly refused: TableDiff['refused'];
  readonly extra: TableDiff['extra'];
  readonly different: TableDiff['different'];
  readonly rejectedInPostgres: number;
}

/** Missing, refused, extra (and with --deep, different) rows against the live table. */
async function compareWithLive(run: DiffQueries, rejectedCount: number, deep: boolean): Promise<LiveFigures> {
  const { q } = run;
  const postgresRows = await run.count(q.liveCount());
  const shared = q.otherUniques.length > 0;
  if (shared) await run.exec(q.createShared());
  await run.exec(q.createMissing());
  // Keys two documents claim are rare: only a table holding some looks for their rows.
  const contested = q.documentKey >= 0 && (await run.count(q.count(CONTESTED))) > 0;
  await run.exec(q.createExtra(contested));
  await run.exec(compiled(`ANALYZE ${MISSING}`));
  const missingCount = await run.count(q.missingCount(false));
  const missing = { count: missingCount, sample: await run.sample((n) => q.missingSample(false, n), missingCount, (r) => run.keyed(r)) };
  const refusedCount = await run.count(q.missingCount(true));
  const refused: TableDiff['refused'] = refusedCount
    ? {
        count: refusedCount,
        byColumn: await run.byColumn(q.refusedByColumn()),
        contested: await run.count(q.contestedCount()),
        ...(shared ? { sharedValues: await run.count(q.sharedCount()) } : {}),
        sample: await run.sample((n) => q.missingSample(true, n), refusedCount, (r) => refusedSample(q, r, run.keyed(r))),
      }
    : noneRefused(q);
  const extraCount = await run.count(q.count(EXTRA));
  const extra: TableDiff['extra'] = {
    count: extraCount,
    ...(shared ? { sharedValues: extraCount ? await run.count(q.extraSharedCount()) : 0 } : {}),
    ...(contested ? { contested: extraCount ? await run.count(q.extraContestedCount()) : 0 } : {}),
    sample: await run.sample((n) => q.extraSample(n), extraCount, (r) => extraSample(q, r)),
  };
  const rejectedInPostgres = rejectedCount ? await run.count(q.rejectedInPostgres()) : 0;
  const different = deep ? await differentRows(run) : null;
  return { postgresRows, missing, refused, extra, different, rejectedInPostgres };
}

/** Nothing refused (`sharedValues` only for a table with a unique constraint other than its key). */
function noneRefused(q: TableDiffSql): TableDiff['refused'] {
  return { count: 0, byColumn: {}, contested: 0, ...(q.otherUniques.length > 0 ? { sharedValues: 0 } : {}), sample: [] };
}

/** A refused row's sample: the reference that points at nothing, the key two documents claim, or the constraint whose value rows of other keys hold. */
function refusedSample(q: TableDiffSql, r: Record<string, unknown>, keyed: { key: KeyValues; sourceId: string | null }): TableDiff['refused']['sample'][number] {
  const at = Number(r.absent);
  if (at >= 0) return { ...keyed, column: q.columns[at]!.name, reason: 'missing_reference' };
  const shared = q.sharedLabel(at);
  return shared !== null ? { ...keyed, column: shared, reason: 'duplicate_value' } : { ...keyed, column: q.columns[q.documentKey]!.name, reason: 'duplicate_key' };
}

/** An extra row's sample: its key, and the constraint whose shared value refuses its key's row, if so. */
function extraSample(q: TableDiffSql, r: Record<string, unknown>): TableDiff['extra']['sample'][number] {
  const u = r.u === null || r.u === undefined ? null : Number(r.u);
  return u === null ? { key: q.keyOf(r) } : { key: q.keyOf(r), column: q.otherUniques[u]!.label, reason: 'duplicate_value' };
}

/** --deep: keys on both sides whose mapped columns differ. */
async function differentRows(run: DiffQueries): Promise<NonNullable<TableDiff['different']>> {
  const { q } = run;
  await run.exec(q.createChanged());
  const count = await run.count(q.count(CHANGED));
  const byColumn = await run.byColumn(q.changedByColumn());
  const sample = await run.sample((n) => q.changedSample(n), count, (r) => ({
    key: q.keyOf(r),
    sourceId: r.src as string,
    columns: (r.cols as number[]).map((i) => q.columns[i]!.name),
  }));
  return { count, byColumn, notCompared: q.notCompared, sample };
}

/** Nothing to compare with: every expected row is missing. */
async function nothingToCompare(run: DiffQueries, tableExists: boolean, rows: number): Promise<LiveFigures> {
  const postgresRows = tableExists ? await run.count(run.q.liveCount()) : null;
  const missing = { count: rows, sample: await run.sample((n) => run.q.rowsSample(n), rows, (r) => run.keyed(r)) };
  const extra = { count: 0, ...(run.q.otherUniques.length > 0 ? { sharedValues: 0 } : {}), sample: [] };
  return { postgresRows, missing, refused: noneRefused(run.q), extra, different: null, rejectedInPostgres: 0 };
}

function sortedCounts(counts: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.keys(counts).sort().map((k) => [k, counts[k]!]));
}
