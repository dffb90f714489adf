// The staged-run builder of the load tests: runs as transform leaves them (CSV, keys, contributions,
// live keys, manifest), written with the real staging codecs (csvWriter, AtomicFileSink, manifest)
// for a model resolved from pipeline.yaml text (pipelineFromYaml, test/harness/staged-run.ts).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { csvWriter, type Cell } from '../../staging/csv.ts';
import { AtomicFileSink } from '../../staging/atomic-file.ts';
import { createRun, type RunPaths } from '../../staging/run-folder.ts';
import type { FileRecord, Manifest } from '../../staging/manifest.ts';
import type { TransformTableRecord } from '../../staging/manifest-transform.ts';
import type { PipelineModel, TableModel } from '../../model/types.ts';
import { extractRecord, publishRun, runManifest } from '../harness/staged-run.ts';
import { documentIdColumn } from '../../schema/state-tables.ts';
import type { Servers } from '../harness/index.ts';

export interface StagedTable {
  readonly rows: readonly (readonly Cell[])[] | (() => AsyncIterable<readonly Cell[]>);
  /**
   * The documents whose rows the run replaces (the keys file): upsert, explode: their `_id` (default:
   * the document key of every row); dedupe: the contributing documents' `_id`s (default: `docs`).
   */
  readonly keys?: readonly string[];
  /** Beside `keys`, each document's `_id` when it is not the key's text (else null): the keys file gets its `_id` column. */
  readonly identities?: readonly (string | null)[];
  /** dedupe: the `_id` of the document contributing each row (default: one new id per row and run). */
  readonly docs?: readonly string[];
  /** The collection was read in full: rows the run does not stage leave the table. */
  readonly complete?: boolean;
  /** Delete propagation: the keys of the rows the table may hold (transform/<table>.live.csv). */
  readonly live?: readonly string[];
  /** Override the manifest's row count (to test the check). */
  readonly recordRows?: number;
}

export interface StageRunOptions {
  /** Per collection: the extract's watermark (`from` null = read in full). Default: next = now, from null. */
  readonly watermarks?: Readonly<Record<string, { from: string | null; next: string; next_basis?: 'server_clock' | 'dump_dates' }>>;
  readonly now?: Date;
}

/** Writes a complete staged run (extract + transform done) and points `latest` at it. */
export async function stageRun(stagingDir: string, model: PipelineModel, data: Readonly<Record<string, StagedTable>>, o: StageRunOptions = {}): Promise<string> {
  const paths = await createRun(stagingDir, o.now ?? new Date());
  const now = new Date().toISOString();
  const tables: Record<string, TransformTableRecord> = {};
  for (const [name, staged] of Object.entries(data)) {
    const t = model.tables.get(name);
    if (!t) throw new Error(`no table ${name} in the model`);
    tables[name] = await stageTable(paths, t, staged);
  }
  const collections: NonNullable<Manifest['stages']['extract']>['collections'] = {};
  for (const c of model.collections) {
    const watermark = o.watermarks?.[c.name] ?? { from: null, next: now };
    collections[c.name] = extractRecord(paths, model, c.name, { file: { bytes: 0, sha256: '', records: 0 }, watermark, startedAt: now, endedAt: now });
  }
  const manifest = runManifest(paths, model.sha256, {
    extract: { status: 'done', started_at: now, ended_at: now, full: true, server_started_at: now, collections },
    transform: { status: 'done', started_at: now, ended_at: now, pipeline_sha256: model.sha256, tables },
  });
  await mkdir(paths.loadDir, { recursive: true });
  await publishRun(stagingDir, paths, manifest);
  return paths.runId;
}

async function stageTable(paths: RunPaths, t: TableModel, staged: StagedTable): Promise<TransformTableRecord> {
  const name = t.name;
  const csv = await writeCsv(paths.transformCsv(name), t.stagedColumns.map((c) => c.name), staged.rows, paths.relative(paths.transformCsv(name)));
  const rows = typeof staged.rows === 'function' ? null : staged.rows;
  let contrib: FileRecord | undefined;
  let keys: readonly string[] | null = staged.keys ?? null;
  let keyColumn = t.documentKey;
  if (t.strategy === 'dedupe') {
    if (!rows) throw new Error('a dedupe table is staged from a list of rows');
    const docs = staged.docs ?? rows.map((_, i) => `${paths.runId}:${name}:${i}`);
    const file = paths.transformContrib(name);
    contrib = await writeCsv(file, [documentIdColumn(t), ...t.stagedColumns.map((c) => c.name)], rows.map((r, i) => [docs[i]!, ...r]), paths.relative(file));
    keys ??= docs;
    keyColumn = documentIdColumn(t);
  } else if (keys === null && rows && keyColumn) {
    const at = t.stagedColumns.findIndex((c) => c.name === keyColumn);
    keys = [...new Set(rows.map((r) => r[at]).filter((k): k is string => typeof k === 'string'))];
  }
  const ids = staged.identities;
  const keysColumns = keyColumn ? (ids ? [keyColumn, documentIdColumn(t)] : [keyColumn]) : [];
  const keysRecord = keys && keyColumn ? await writeCsv(paths.transformKeys(name), keysColumns, keys.map((k, i) => (ids ? [k, ids[i] ?? null] : [k])), paths.relative(paths.transformKeys(name))) : null;
  const rejectsPath = paths.transformRejects(name);
  await writeFile(rejectsPath, '');
  const live = staged.live && keyColumn ? await writeCsv(paths.transformLive(name), [keyColumn], staged.live.map((k) => [k]), paths.relative(paths.transformLive(name))) : null;
  return {
    collection: t.collection,
    strategy: t.strategy,
    documents: csv.records,
    rows: staged.recordRows ?? csv.records,
    rejected: 0,
    skipped: {},
    altered: {},
    csv,
    keys: keysRecord,
    rejects: { file: paths.relative(rejectsPath), bytes: 0, sha256: createHash('sha256').digest('hex'), records: 0 },
    ...(contrib ? { contrib } : {}),
    ...(staged.complete ? { complete: true } : {}),
    ...(live ? { live: { ...live, column: keyColumn!, source: `extract/${t.collection}.ids.ndjson`, ids: live.records, filtered: 0, refused: 0 } } : {}),
  };
}

async function writeCsv(path: string, columns: readonly string[], rows: StagedTable['rows'], relative: string): Promise<FileRecord> {
  const sink = new AtomicFileSink(path);
  const source = typeof rows === 'function' ? Readable.from(rows()) : Readable.from(rows as (readonly Cell[])[]);
  // Records, not lines: a quoted value may hold newlines.
  let records = 0;
  const count = new Transform({
    objectMode: true,
    transform(row, _e, cb) {
      records += 1;
      cb(null, row);
    },
  });
  await pipeline(source, count, csvWriter(columns), sink);
  const f = await sink.commit();
  return { file: relative, bytes: f.bytes, sha256: f.sha256, records };
}

/** What a load test starts from: a fresh database and a staging folder, removed when the test ends. */
export async function freshDatabaseAndStaging(
  servers: Servers,
  t: { readonly name: string; after(fn: () => unknown): void },
  prefix: string,
): Promise<{ url: string; staging: string }> {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await mkdtemp(path.join(os.tmpdir(), `etl-${prefix}-`));
  t.after(() => rm(staging, { recursive: true, force: true }));
  return { url, staging };
}
