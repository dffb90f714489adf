// Test fixtures for the load stage: small table models built by hand (so a test says exactly what
// it loads) and staged runs written with the real staging codecs (csvWriter, AtomicFileSink,
// manifest), as transform would leave them.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { csvWriter, type Cell } from '../../staging/csv.ts';
import { AtomicFileSink } from '../../staging/atomic-file.ts';
import { writeManifest, type Manifest, TOOL_VERSION } from '../../staging/manifest.ts';
import { createRun, setLatest, type RunPaths } from '../../staging/run-folder.ts';
import type { FileRecord } from '../../staging/manifest.ts';
import type { TransformTableRecord } from '../../staging/manifest-transform.ts';
import type { ColumnModel, PipelineModel, SqlType, TableModel } from '../../model/types.ts';
import { columnTypeSql } from '../../load/shape.ts';
import { documentIdColumn } from '../../schema/state-tables.ts';
import { documentKeyOf, mergeKindOf } from '../../model/resolve-table.ts';

export const T = {
  varchar: (length: number | null = null): SqlType => ({ kind: 'varchar', length }),
  text: (): SqlType => ({ kind: 'text' }),
  smallint: (): SqlType => ({ kind: 'smallint' }),
  integer: (): SqlType => ({ kind: 'integer' }),
  serial: (): SqlType => ({ kind: 'serial' }),
  boolean: (): SqlType => ({ kind: 'boolean' }),
  timestamp: (): SqlType => ({ kind: 'timestamp' }),
  date: (): SqlType => ({ kind: 'date' }),
};

export interface ColSpec {
  readonly type?: SqlType;
  readonly nullable?: boolean;
  readonly pk?: boolean;
  readonly fk?: string; // "users(id)"
  readonly onMissing?: 'reject' | 'set_null';
  readonly generated?: boolean;
}

export function col(name: string, spec: ColSpec = {}): ColumnModel {
  const sqlType = spec.type ?? T.varchar();
  const fk = spec.fk ? /^(.+)\((.+)\)$/.exec(spec.fk) : null;
  return {
    name,
    sqlType,
    sqlTypeText: sqlType.kind === 'serial' ? 'SERIAL' : columnTypeSql(sqlType).toUpperCase(),
    nullable: spec.pk ? false : (spec.nullable ?? true),
    primaryKey: spec.pk ?? false,
    // A primary key named id is fed by the document _id, as include_base makes it.
    source: spec.generated || sqlType.kind === 'serial' ? { kind: 'generated' } : { kind: 'field', path: spec.pk && name === 'id' ? '_id' : name },
    foreignKey: fk ? { table: fk[1]!, column: fk[2]!, onMissing: spec.onMissing ?? 'reject' } : null,
    line: 1,
  };
}

/** created_at / updated_at TIMESTAMP NOT NULL. */
export const timestamps = (): ColumnModel[] => [col('created_at', { type: T.timestamp(), nullable: false }), col('updated_at', { type: T.timestamp(), nullable: false })];

export interface TableSpec {
  readonly name: string;
  readonly collection?: string;
  readonly columns: readonly ColumnModel[];
  readonly strategy?: 'upsert' | 'explode' | 'dedupe';
  readonly unique?: readonly (readonly string[])[];
  readonly parent?: string;
  readonly merge?: 'delete_and_insert' | 'upsert';
  readonly dedupeKey?: readonly string[];
  readonly latestBy?: string;
  readonly forceReimport?: boolean;
  readonly truncateBeforeImport?: boolean;
}

export function table(s: TableSpec): TableModel {
  const strategy = s.strategy ?? 'upsert';
  const primaryKey = s.columns.filter((c) => c.primaryKey).map((c) => c.name);
  const unique = s.unique ?? [];
  let mergeKey: readonly string[];
  if (strategy === 'dedupe') mergeKey = s.dedupeKey!;
  else if (strategy === 'explode') mergeKey = unique[0] ?? [];
  else mergeKey = primaryKey;
  const explode = strategy === 'explode' ? { parentColumn: s.parent!, merge: s.merge ?? 'delete_and_insert', arrays: [] } : null;
  return {
    name: s.name,
    collection: s.collection ?? s.name,
    strategy,
    columns: s.columns,
    stagedColumns: s.columns.filter((c) => c.source.kind !== 'generated'),
    primaryKey,
    uniqueConstraints: unique,
    mergeKey,
    mergeKind: mergeKindOf(strategy, explode),
    documentKey: documentKeyOf({ strategy, primaryKey, columns: s.columns, explode }),
    filter: null,
    explode,
    dedupe: strategy === 'dedupe' ? { key: s.dedupeKey!, latestBy: s.latestBy ?? 'updated_at' } : null,
    exportOrder: 1,
    forceReimport: s.forceReimport ?? false,
    truncateBeforeImport: s.truncateBeforeImport ?? false,
    dateThreshold: null,
    propagateDeletes: false,
    line: 1,
  };
}

/** A model of these tables, loaded in the order given (the caller lists parents first). */
export function pipelineModel(tables: readonly TableModel[], sha256 = 'a'.repeat(64)): PipelineModel {
  const collections = [...new Set(tables.map((t) => t.collection))];
  return {
    file: '/dev/null/pipeline.yaml',
    sha256,
    settings: { timezone: 'Europe/Paris', batchSize: 1000, dateThreshold: null, watermarkMarginSeconds: 300, nulCharacter: 'reject' },
    tables: new Map(tables.map((t) => [t.name, t])),
    loadOrder: tables.map((t) => t.name),
    collections: collections.map((c) => ({
      name: c,
      tables: tables.filter((t) => t.collection === c).map((t) => t.name),
      projection: ['_id'],
      serverFilter: null,
    })),
  };
}

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
  readonly watermarks?: Readonly<Record<string, { from: string | null; next: string }>>;
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
    const wm = o.watermarks?.[c.name] ?? { from: null, next: now };
    collections[c.name] = {
      file: `extract/${c.name}.ndjson`,
      bytes: 0,
      sha256: '',
      records: 0,
      documents: 0,
      filter: {},
      watermark: wm,
      started_at: now,
      ended_at: now,
      tables: [...c.tables],
    };
  }
  const manifest: Manifest = {
    format: 1,
    run_id: paths.runId,
    tool_version: TOOL_VERSION,
    pipeline_sha256: model.sha256,
    source: { kind: 'dump', description: 'test fixture' },
    destination: null,
    stages: {
      extract: { status: 'done', started_at: now, ended_at: now, full: true, server_started_at: now, collections },
      transform: { status: 'done', started_at: now, ended_at: now, pipeline_sha256: model.sha256, tables },
    },
  };
  await mkdir(paths.loadDir, { recursive: true });
  await writeManifest(paths, manifest);
  await setLatest(stagingDir, paths.runId);
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
