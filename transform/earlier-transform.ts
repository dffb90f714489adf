// A transform of a run that was transformed before: what becomes of the earlier transform's files.
//
// The run's transform section, the files of its transform folder and what `etl load` loads must
// agree (`etl verify` and `etl pack` check the first two, load reads the section). So:
// - `--tables` re-transforming a subset of a run whose earlier transform finished with this same
//   pipeline.yaml keeps the other tables' records and files: the run stays whole, as an operator
//   redoing one table expects, and load loads every table of it (the kept files are what this
//   pipeline.yaml makes of the same staged documents);
//   a subset redone after a subset that failed or was killed keeps what that one had kept;
// - any other earlier file goes before this transform writes (the tables an earlier transform wrote
//   before it failed or was killed, or made with another pipeline.yaml, cannot be mixed with this
//   one; a table this transform writes is written again): no file stays that the section does not record.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { PipelineModel } from '../model/types.ts';
import type { TransformSection, TransformTableRecord } from '../staging/manifest-transform.ts';
import type { FileRecord, Manifest } from '../staging/manifest.ts';
import type { RunPaths } from '../staging/run-folder.ts';

export interface EarlierTransform {
  /** Tables whose record (and files) stay from the earlier transform, in load order. */
  readonly kept: ReadonlyMap<string, TransformTableRecord>;
  /** Tables of the earlier transform this one neither keeps nor writes: their files are removed. */
  readonly dropped: readonly string[];
  /** Why `dropped` are not kept and what to do (for the operator), or null when none is dropped. */
  readonly droppedBecause: string | null;
  /** When tables are kept: the earlier section's tables whose collection the run does not hold (a subset names none). */
  readonly notExtracted: readonly string[];
}

export const NO_EARLIER_TRANSFORM: EarlierTransform = { kept: new Map(), dropped: [], droppedBecause: null, notExtracted: [] };

/** What stays of the run's earlier transform section when this transform writes the tables `writing`. */
export function earlierTransform(model: PipelineModel, manifest: Manifest, writing: ReadonlySet<string>, subset: boolean): EarlierTransform {
  const earlier = manifest.stages.transform;
  if (!earlier) return NO_EARLIER_TRANSFORM;
  const reusable = reusableTables(model, earlier, subset);
  const kept = new Map<string, TransformTableRecord>();
  const dropped: string[] = [];
  for (const t of inLoadOrder(model, Object.keys(earlier.tables ?? {}))) {
    const record = earlier.tables[t]!;
    if (reusable.has(t) && !writing.has(t) && model.tables.has(t)) kept.set(t, record);
    else if (!writing.has(t)) dropped.push(t);
  }
  const notExtracted = kept.size > 0 ? (earlier.not_extracted ?? []) : [];
  return { kept, dropped, droppedBecause: dropped.length > 0 ? whyDropped(model, earlier, subset) : null, notExtracted };
}

/**
 * The earlier tables a subset may keep: every table of a finished transform made with this
 * pipeline.yaml; of one that failed or was killed, only those it had kept itself from a finished
 * one (`tables_kept`: a subset redone after a failed subset keeps the rest of the run), never the
 * tables it wrote before it stopped (the tables it did not reach would be missing from the run).
 */
function reusableTables(model: PipelineModel, earlier: TransformSection, subset: boolean): Set<string> {
  if (!subset || earlier.pipeline_sha256 !== model.sha256) return new Set();
  return new Set(earlier.status === 'done' ? Object.keys(earlier.tables ?? {}) : (earlier.tables_kept ?? []));
}

/**
 * Before this transform writes (a table written again is written whole): every file of the
 * transform folder no kept record names goes, those the earlier section recorded and any other. A
 * transform killed while at work recorded none of the tables it had written (records are written
 * when it ends): a subset redone after it left their files beside its own section, files `etl
 * verify` and `etl pack` found extra. Only files directly in the run's transform folder are removed.
 */
export async function removeStale(paths: RunPaths, earlier: EarlierTransform): Promise<void> {
  const keptFiles = new Set([...earlier.kept.values()].flatMap(filesOf));
  const present = await readdir(paths.transformDir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? [] : Promise.reject(e)));
  for (const entry of present) {
    if (entry.isFile() && !keptFiles.has(`transform/${entry.name}`)) await rm(path.join(paths.transformDir, entry.name), { force: true });
  }
}

/** `names` in the pipeline's load order; names the pipeline no longer holds last, sorted. */
export function inLoadOrder(model: PipelineModel, names: Iterable<string>): string[] {
  const set = new Set(names);
  const known = model.loadOrder.filter((t) => set.has(t));
  const unknown = [...set].filter((t) => !model.tables.has(t)).sort();
  return [...known, ...unknown];
}

function whyDropped(model: PipelineModel, earlier: TransformSection, subset: boolean): string {
  if (!subset) return `not transformed this time (not in ${path.basename(model.file)}, or their collection is not in the run)`;
  const again = 'transform them again (--tables) for etl load to load them from this run';
  // A `running` section here is a killed one: transform refuses a run whose transform is at work.
  if (earlier.status !== 'done') return `the earlier transform of the run did not finish (${earlier.status === 'running' ? 'killed' : earlier.status}); ${again}`;
  return `the earlier transform used another pipeline.yaml (sha256 ${earlier.pipeline_sha256}); ${again}`;
}

/** Every file a table record names (csv, keys, rejects, contrib, live, recompute…), whatever its role. */
function filesOf(record: TransformTableRecord): string[] {
  return Object.values(record as unknown as Record<string, unknown>)
    .filter((v): v is FileRecord => v !== null && typeof v === 'object' && typeof (v as FileRecord).file === 'string')
    .map((r) => r.file);
}
