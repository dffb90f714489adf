// `etl clean` rule 3: a run transformed but not loaded is superseded when a newer run, loaded into
// the same database, provably read every change it carried. Proof, not likelihood: anything the
// manifests do not record (a destination, a watermark, a date that does not parse) keeps the run.
//
// What the not-loaded run A carried, per collection it extracted, and what covers it in the loaded
// run B (newer, its load committed, the same destination as A's load recorded):
//  - documents created or updated since A's lower bound (`watermark.from`; null: read in full):
//    B read the collection from a bound at or before A's (a full read covers any). The watermark
//    only moves on load, so a cron's runs after a failed load read from the same bound; a `--since`
//    run reading from further back than B is not covered;
//  - a repair run's documents, chosen by `_id` whatever their dates (`requested`): only a full read
//    of the collection by B covers them;
//  - delete propagation (the collection's `_id` set, `ids`, for some tables): B staged the set too
//    for those tables, or read the collection in full (a full read removes what it does not stage);
//  - its tables: B's load committed every table A transformed (a `--tables` subset of A is then
//    covered; a `--tables` load of B that left one of them out is not).
// Not compared: the documents an incremental read asks for whatever their dates because the
// database said so (contested claimants, documents found gone: extract/watermark-plan.ts). The
// database asks every later incremental read for them until they are settled, and A's load never
// touched it. Nor the pipeline.yaml: B's rows follow the pipeline it was transformed with, the one
// PostgreSQL should now hold; A's rows under an older pipeline are not worth keeping.
import type { Manifest } from '../staging/manifest.ts';
import type { ExtractCollectionRecord } from '../staging/manifest-extract.ts';
import { committedTables, isLoaded } from './runs.ts';

export interface RunOnDisk {
  readonly runId: string;
  readonly manifest: Manifest | null;
}

/**
 * The id of the oldest loaded run newer than `run` whose extract covered every change `run` carried
 * (see above), or null: none did, or `run` is not a finished run whose load is not done. `runs`:
 * every run of the staging folder, in any order.
 */
export function supersedingRun(run: RunOnDisk, runs: readonly RunOnDisk[]): string | null {
  const a = run.manifest;
  if (!a || !notLoaded(a)) return null;
  const destination = a.destination?.description;
  if (!destination) return null;
  const newerLoaded = runs
    .filter((b) => b.runId > run.runId && isLoaded(b.manifest) && b.manifest!.destination?.description === destination)
    .sort((x, y) => (x.runId < y.runId ? -1 : 1));
  return newerLoaded.find((b) => covers(b.manifest!, a))?.runId ?? null;
}

/**
 * Extract and transform done, the load not done: never ran, failed, or a dry run. Not a load marked
 * running, killed or not: a killed load may have committed, which only its database's ledger knows.
 */
function notLoaded(m: Manifest): boolean {
  const { extract, transform, load } = m.stages;
  if (extract?.status !== 'done' || transform?.status !== 'done') return false;
  if (load === undefined || load.status === 'failed') return true;
  return load.status === 'done' && load.dry_run === true;
}

/** B's extract read every document A's did, and B's load committed every table A transformed. */
function covers(b: Manifest, a: Manifest): boolean {
  const aCollections = Object.entries(a.stages.extract?.collections ?? {});
  const aTables = Object.keys(a.stages.transform?.tables ?? {});
  if (aCollections.length === 0 || aTables.length === 0) return false;
  const loaded = new Set(committedTables(b));
  if (!aTables.every((t) => loaded.has(t))) return false;
  const bCollections = b.stages.extract?.collections ?? {};
  return aCollections.every(([name, record]) => collectionCovered(record, bCollections[name]));
}

/** B's read of a collection holds every document A's read of it held (and its `_id` set, if A staged one). */
function collectionCovered(a: ExtractCollectionRecord, b: ExtractCollectionRecord | undefined): boolean {
  if (!b || b.requested || !b.watermark) return false;
  const bFull = b.watermark.from === null;
  if (a.ids && (a.ids.tables?.length ?? 0) > 0 && !bFull && !idsCovered(a.ids.tables, b)) return false;
  if (a.requested) return bFull;
  if (!a.watermark) return false;
  return boundAtOrBefore(b.watermark.from, a.watermark.from);
}

function idsCovered(tables: readonly string[], b: ExtractCollectionRecord): boolean {
  const staged = new Set(b.ids?.tables ?? []);
  return tables.every((t) => staged.has(t));
}

/** A read from `bFrom` sees every document a read from `aFrom` sees (null: a full read). */
function boundAtOrBefore(bFrom: string | null | undefined, aFrom: string | null | undefined): boolean {
  if (bFrom === null) return true;
  if (aFrom === null || typeof bFrom !== 'string' || typeof aFrom !== 'string') return false;
  const [bAt, aAt] = [Date.parse(bFrom), Date.parse(aFrom)];
  return Number.isFinite(bAt) && Number.isFinite(aAt) && bAt <= aAt;
}
