// Delete propagation, transform side: a collection's staged `_id` set (extract/<c>.ids.ndjson) →
// per propagating table, transform/<table>.live.csv, the keys of every row the table may hold now.
// Load deletes the rows whose key is not in it (load/leave.ts, load/contributions.ts).
//
//   upsert table   key column = the primary key fed by `_id` (id); one row per live document that
//                  passes the table's filter (an event whose `__t` is no longer `menu` is not a live
//                  menu, so its menus row goes)
//   explode table  key column = the parent column; one row per live parent document passing the
//                  filter: its links stay (the merge keeps them current), a gone parent's links go
//   dedupe table   key column = the contributions' document column; one row per live document
//                  passing the filter: load drops the contributions of the others and recomputes
//                  their keys
//
// The key is converted by the column's own converter, so it is byte for byte the text the table's
// CSV holds. The ids file is checked against the extract manifest (records, bytes, sha256) as the
// documents file is. One streamed pass per collection, however many tables it feeds.
import path from 'node:path';
import { StagingError } from '../errors/etl-error.ts';
import type { PipelineModel, TableModel } from '../model/types.ts';
import type { FileRecord, Manifest } from '../staging/manifest.ts';
import type { LiveKeysFigures } from '../staging/manifest-transform.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { documentColumn } from '../mapping/scope.ts';
import { filterSkip, type SkipTest } from '../mapping/upsert.ts';
import { columnConverter, Rejection } from '../mapping/convert.ts';
import type { RawDocument } from '../mapping/ejson-value.ts';
import { documentIdKey } from './rejects.ts';
import { keyTextTooLong } from '../mapping/key-size.ts';
import { readLineBatches, type FileDigest } from './ndjson-batches.ts';
import { checkExtractRead, unreadableExtract } from './extract-check.ts';
import { CsvOutput } from './staged-output.ts';

/** What the manifest records of a table's live keys (transform.tables[t].live). */
export type LiveKeysRecord = LiveKeysFigures;

/** The manifest's ids record, as extract writes it (staging/manifest-extract.ts names it `ids`). */
interface IdsRecord extends FileRecord {
  tables: string[];
  /** Extract proved the listing complete (ordered, and as many as counted); older runs: absent. */
  complete?: boolean;
}

export interface LiveKeysInput {
  readonly model: PipelineModel;
  readonly paths: RunPaths;
  readonly manifest: Manifest;
  /** Tables this transform wrote: live keys are staged for those among them the extract staged ids for. */
  readonly tables: ReadonlySet<string>;
  readonly signal: AbortSignal;
}

/** Writes the live keys files; returns their records by table (empty when no ids were staged). */
export async function stageLiveKeys(input: LiveKeysInput): Promise<Map<string, LiveKeysRecord>> {
  const out = new Map<string, LiveKeysRecord>();
  const collections = input.manifest.stages.extract?.collections ?? {};
  for (const [collection, record] of Object.entries(collections)) {
    const ids = (record as { ids?: IdsRecord }).ids;
    // A listing extract could not prove complete names no live set: nothing is deleted on a guess.
    if (!ids || ids.complete === false) continue;
    const tables = ids.tables.filter((t) => input.tables.has(t)).map((t) => input.model.tables.get(t)!);
    if (tables.length === 0) continue;
    for (const [table, r] of await stageCollection(input, collection, ids, tables)) out.set(table, r);
  }
  return out;
}

interface TableLive {
  readonly table: TableModel;
  /** The key column (the file's header). */
  readonly column: string;
  readonly convert: (value: unknown) => string | null | Rejection;
  readonly skip: SkipTest;
  readonly csv: CsvOutput;
  filtered: number;
  refused: number;
}

async function stageCollection(input: LiveKeysInput, collection: string, ids: IdsRecord, tables: readonly TableModel[]): Promise<Map<string, LiveKeysRecord>> {
  const { paths } = input;
  const file = path.join(paths.dir, ids.file);
  let failure: unknown = null;
  const inner = new AbortController();
  const signal = AbortSignal.any([input.signal, inner.signal]);
  const onFailure = (e: unknown): void => {
    failure ??= e;
    inner.abort(e);
  };
  const works: TableLive[] = [];
  try {
    for (const table of tables) works.push(liveWork(input, table, signal, onFailure));
    const lines = await writeLiveKeys(file, ids, collection, paths, works, signal);
    const records = new Map<string, LiveKeysRecord>();
    for (const w of works) {
      const figures = await w.csv.commit();
      records.set(w.table.name, { ...figures, column: w.column, source: ids.file, ids: lines, filtered: w.filtered, refused: w.refused });
    }
    return records;
  } catch (error) {
    inner.abort(error);
    for (const w of works) await w.csv.discard().catch(() => undefined);
    throw failure ?? unreadableExtract(error, file, collection, paths) ?? error;
  }
}

/** Reads the ids file once for every table, then checks it is the file the manifest describes. */
async function writeLiveKeys(file: string, ids: IdsRecord, collection: string, paths: RunPaths, works: readonly TableLive[], signal: AbortSignal): Promise<number> {
  const digest: FileDigest = { bytes: 0, sha256: null };
  let lines = 0;
  for await (const batch of readLineBatches(file, digest, signal)) {
    for (let i = 0; i < batch.length; i += 1) {
      const doc = batch.document(i, paths.relative(file));
      lines += 1;
      for (const w of works) offer(w, doc);
    }
    for (const w of works) if (w.csv.needsDrain) await w.csv.drain();
  }
  checkExtractRead(paths, ids, { ...digest, records: lines }, collection);
  return lines;
}

/** A live document's key, when the table keeps the document and its `_id` converts. */
function offer(w: TableLive, doc: RawDocument): void {
  if (w.skip(doc) !== null) {
    w.filtered += 1;
    return;
  }
  const key = w.convert(doc._id);
  // A key no index can hold names no row (transform refuses it: mapping/key-size.ts).
  if (key instanceof Rejection || key === null || keyTextTooLong(key)) {
    w.refused += 1;
    return;
  }
  w.csv.write([key]);
}

/**
 * The table's live keys file, keyed by the column naming its documents (mapping/scope.ts): the
 * column holding the `_id`, converted by its own converter; for a dedupe table the documents'
 * `_id`s as its contributions name them. A live document counts when the table's filter keeps it.
 */
function liveWork(input: LiveKeysInput, table: TableModel, signal: AbortSignal, onFailure: (e: unknown) => void): TableLive {
  const name = documentColumn(table);
  if (name === null) {
    throw new StagingError('live_keys_unsupported', `${table.name}: no key column holds the document _id, so deletes cannot propagate to it`, {
      hint: 'remove propagate_deletes from the table, or extract without --propagate-deletes',
    });
  }
  const column = table.stagedColumns.find((c) => c.name === name);
  return {
    table,
    column: name,
    convert: column ? columnConverter(column, input.model.settings, { stripped: false }) : documentIdKey,
    skip: filterSkip(table),
    csv: new CsvOutput(input.paths, input.paths.transformLive(table.name), [name], signal, onFailure),
    filtered: 0,
    refused: 0,
  };
}
