// What a load will do, decided from the staged run alone (no database yet): the run, the tables in
// load order, what each staged, and the warnings a user should read before anything changes.
import { isDeepStrictEqual } from 'node:util';
import { StagingError } from '../errors/etl-error.ts';
import { selectTables } from '../model/select-tables.ts';
import type { PipelineModel } from '../model/types.ts';
import { tableFingerprint, type PlannedMapping } from '../model/fingerprint.ts';
import { readManifest, refuseBusyRun, requireStageDone, type Manifest } from '../staging/manifest.ts';
import { describePostgres } from '../connect/config.ts';
import type { ExtractCollectionRecord } from '../staging/manifest-extract.ts';
import { resolveRun, type RunPaths } from '../staging/run-folder.ts';
import type { LoadOptions } from './options.ts';

export interface LoadPlan {
  readonly model: PipelineModel;
  readonly paths: RunPaths;
  readonly manifest: Manifest;
  /** The tables asked for (or all) that the run staged, in load order. */
  readonly tables: readonly string[];
  readonly warnings: string[];
  readonly dryRun: boolean;
}

export async function planLoad(options: LoadOptions): Promise<LoadPlan> {
  const { model } = options;
  options.signal?.throwIfAborted();
  const paths = await resolveRun(options.stagingDir, options.runId ?? null);
  const manifest = await readManifest(paths);
  requireStageDone(manifest, 'transform', paths);
  refuseLoadElsewhere(manifest, paths, describePostgres(options.postgres));
  const tables = planTables(model, manifest, paths, options.tables ?? null);
  return { model, paths, manifest, tables, warnings: planWarnings(model, manifest, paths, tables), dryRun: options.dryRun === true };
}

/**
 * A load of this run into another database, at work in another process of this host: both would
 * write the run's rejects files and its one load section. A load into the same database is left to
 * wait for the load lock, which orders the two (the second then finds the run applied).
 */
function refuseLoadElsewhere(manifest: Manifest, paths: RunPaths, destination: string): void {
  if (manifest.stages.load?.status === 'running' && manifest.destination?.description === destination) return;
  refuseBusyRun(manifest, paths, 'load', ['load']);
}

/**
 * Throws when the run changed since the plan was made: a load waits for the load lock after planning,
 * and meanwhile `etl transform --run` of the same run may have rewritten its files and section (other
 * tables, another pipeline.yaml), or a load into another database begun. Loading the old plan would
 * then record, over the new transform, tables the run no longer holds. Checked once the lock is held,
 * before anything is recorded or changed.
 */
export async function refuseChangedSince(plan: LoadPlan, destination: string): Promise<void> {
  const manifest = await readManifest(plan.paths);
  refuseLoadElsewhere(manifest, plan.paths, destination);
  const now = manifest.stages.transform;
  if (isDeepStrictEqual(now, plan.manifest.stages.transform)) return;
  const state = now?.status === 'running' ? `its transform is running since ${now.started_at}` : `its transform is now ${now?.status ?? 'gone'}${now?.ended_at ? ` (ended ${now.ended_at})` : ''}`;
  throw new StagingError('run_changed', `run ${plan.paths.runId} was transformed again while this load waited (${state}): nothing was loaded`, {
    context: { file: plan.paths.manifest },
    hint: `run \`etl load --run ${plan.paths.runId}\` again${now?.status === 'running' ? ' once that transform has ended' : ''}: it loads what the run holds now`,
  });
}

/** The extract's watermark record of the table's collection: where it read from, what it guarantees, on what basis. */
export function extractWatermark(plan: LoadPlan, table: string): ExtractCollectionRecord['watermark'] {
  const collection = plan.model.tables.get(table)?.collection;
  return collection === undefined ? undefined : plan.manifest.stages.extract?.collections[collection]?.watermark;
}

/** The instant this run's extract of the table's collection guarantees (the next watermark), or null. */
export function nextWatermark(plan: LoadPlan, table: string): string | null {
  return extractWatermark(plan, table)?.next ?? null;
}

/** A repair run (`etl repair`): it read documents by `_id`, so it moves no watermark and truncates nothing. */
export function isRepair(plan: Pick<LoadPlan, 'manifest'>): boolean {
  return plan.manifest.stages.extract?.repair !== undefined;
}

/** The mapping fingerprint of the table now, and what the run's extract planned with (issue 16). */
export function plannedMapping(plan: LoadPlan, table: string): { current: string; planned: PlannedMapping | null } {
  const record = plan.manifest.stages.extract?.mappings?.[table];
  return {
    current: tableFingerprint(plan.model.tables.get(table)!, plan.model.settings),
    planned: record ? { fingerprint: record.fingerprint, fullRead: record.full_read, mapping: record.mapping } : null,
  };
}

/** Tables to load: the ones asked for (or all), that the run staged, in load order. */
function planTables(model: PipelineModel, manifest: Manifest, paths: RunPaths, asked: readonly string[] | null): string[] {
  const staged = manifest.stages.transform?.tables ?? {};
  if (asked) {
    selectTables(model, asked);
    const missing = asked.filter((t) => !staged[t]);
    if (missing.length) {
      throw new StagingError('table_not_staged', `run ${paths.runId} holds no transformed ${missing.join(', ')}`, {
        hint: `run \`etl transform --run ${paths.runId}\` for ${missing.length > 1 ? 'them' : 'it'}, or leave ${missing.length > 1 ? 'them' : 'it'} out of --tables`,
      });
    }
  }
  const wanted = new Set(asked ?? Object.keys(staged));
  return model.loadOrder.filter((t) => wanted.has(t) && staged[t]);
}

function planWarnings(model: PipelineModel, manifest: Manifest, paths: RunPaths, tables: readonly string[]): string[] {
  const warnings: string[] = [];
  const transformSha = manifest.stages.transform?.pipeline_sha256 ?? manifest.pipeline_sha256;
  if (transformSha && transformSha !== model.sha256) {
    warnings.push(`run ${paths.runId} was transformed with another pipeline.yaml (sha256 ${transformSha.slice(0, 12)}…); its CSV columns were checked against this one`);
  }
  for (const t of tables) {
    const record = manifest.stages.transform?.tables[t];
    if (model.tables.get(t)?.propagateDeletes && !record?.live && !record?.complete) {
      warnings.push(`${t}: propagate_deletes is set, but run ${paths.runId} staged no list of the collection's _ids: rows whose document is gone stay in PostgreSQL (extract with --propagate-deletes)`);
    }
  }
  return warnings;
}
