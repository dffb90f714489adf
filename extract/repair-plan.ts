// What a repair run (`etl repair`) extracts: the collections holding a document to re-read, or
// feeding a dedupe table with a key to recompute, among the tables asked for. Each is read by `_id`
// (requested-read.ts); the dedupe keys are staged as they were asked, in
// extract/<table>.recompute.csv, for transform to check and pass on to load.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UsageError } from '../errors/etl-error.ts';
import type { PipelineModel } from '../model/types.ts';
import { AtomicFileSink } from '../staging/atomic-file.ts';
import { csvWriter } from '../staging/csv.ts';
import type { ExtractRecomputeRecord, ExtractRepairRecord } from '../staging/manifest-extract.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import type { RepairRequest } from './options.ts';
import { RequestedIds } from './requested-read.ts';
import { planTable, type CollectionPlan } from './watermark-plan.ts';

export interface RepairPlan {
  /** One per collection read; `from` is null but means "by `_id`", never "in full". */
  readonly plans: readonly CollectionPlan[];
  readonly requested: ReadonlyMap<string, RequestedIds>;
  /** The tables of this extract: those asked for whose collection is read. */
  readonly tables: readonly string[];
}

/** The collections to read and the `_id`s of each; a request naming what the model lacks is refused. */
export function planRepair(model: PipelineModel, tables: readonly string[], request: RepairRequest): RepairPlan {
  const wanted = new Set(tables);
  checkRequest(model, request);
  const recomputed = (t: string) => wanted.has(t) && (request.recompute.get(t)?.length ?? 0) > 0;
  const collections = model.collections.filter(
    (c) => c.tables.some((t) => wanted.has(t)) && ((request.ids.get(c.name)?.length ?? 0) > 0 || c.tables.some(recomputed)),
  );
  const requested = new Map(collections.map((c) => [c.name, new RequestedIds(request.ids.get(c.name) ?? [])]));
  // The table plans only carry the tables' names and fingerprints here: nothing is read by date.
  const input = { model, tables, full: true, since: null, globalDateThreshold: null, stored: new Map<string, Date>() };
  const plans = collections.map((collection) => ({
    collection,
    tables: collection.tables.filter((t) => wanted.has(t)).map((t) => planTable(model.tables.get(t)!, input)),
    from: null,
    claimants: [],
    gone: [],
  }));
  return { plans, requested, tables: plans.flatMap((p) => p.tables.map((t) => t.table)) };
}

function checkRequest(model: PipelineModel, request: RepairRequest): void {
  const collections = new Set(model.collections.map((c) => c.name));
  const unknown = [...request.ids.keys()].filter((c) => !collections.has(c));
  if (unknown.length) throw new UsageError('unknown_collection', `a repair asks for documents of ${unknown.join(', ')}, which no table of ${model.file} reads`);
  const notDedupe = [...request.recompute.keys()].filter((t) => model.tables.get(t)?.strategy !== 'dedupe');
  if (notDedupe.length) throw new UsageError('bad_repair', `a repair can recompute the keys of dedupe tables only, not of ${notDedupe.join(', ')}`);
}

/** The run's repair record: `_id`s asked per collection, and each dedupe table's keys file (written here). */
export async function writeRecomputeFiles(run: RunPaths, model: PipelineModel, plan: RepairPlan, request: RepairRequest): Promise<ExtractRepairRecord> {
  const record: ExtractRepairRecord = { requested: {}, recompute: {} };
  for (const [collection, ids] of plan.requested) record.requested[collection] = ids.ids.length;
  for (const table of plan.tables) {
    const rows = request.recompute.get(table);
    if (!rows || rows.length === 0) continue;
    record.recompute[table] = await writeKeysCsv(run, run.extractRecomputeFile(table), model.tables.get(table)!.dedupe!.key, rows);
  }
  return record;
}

/** The keys, sorted and without repeats, so the file's bytes do not depend on the order they were found in. */
async function writeKeysCsv(run: RunPaths, file: string, columns: readonly string[], rows: readonly (readonly (string | null)[])[]): Promise<ExtractRecomputeRecord> {
  const unique = new Map(rows.map((r) => [JSON.stringify(r), r]));
  const sorted = [...unique.keys()].sort().map((k) => unique.get(k)!);
  const sink = new AtomicFileSink(file);
  try {
    await pipeline(Readable.from(sorted.map((r) => [...r])), csvWriter(columns), sink);
    const f = await sink.commit();
    // Records are data rows (the header is a line too).
    return { file: run.relative(file), bytes: f.bytes, sha256: f.sha256, records: f.lines - 1, columns: [...columns] };
  } catch (error) {
    await sink.discard();
    throw error;
  }
}
