// The run as a load starts on it. Usually a transformed run: its plan is final at once. In `etl run`
// (LoadOptions.stagedTables) the run is still being extracted and transformed: the tables to load
// are those the transform plans to stage, each table's record comes once its files are final, and
// the plan (the manifest as `etl transform` leaves it, which every manifest write and watermark
// needs) only once the transform has written its section. It must then name the same tables with
// the same records the load already used, or the load fails.
import { isDeepStrictEqual } from 'node:util';
import { selectTables } from '../model/select-tables.ts';
import type { PipelineModel } from '../model/types.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import { readManifest } from '../staging/manifest.ts';
import { resolveRun, type RunPaths } from '../staging/run-folder.ts';
import type { StagedTablesFeed } from '../staging/staged-tables.ts';
import type { LoadOptions } from './options.ts';
import { isRepair, planLoad, type LoadPlan } from './plan.ts';

export interface LoadStart {
  readonly model: PipelineModel;
  readonly paths: RunPaths;
  /** The tables asked for (or all) that the run stages, in load order. */
  readonly tables: readonly string[];
  readonly dryRun: boolean;
  readonly repair: boolean;
  /** True while the run is still being staged (`etl run`). */
  readonly fed: boolean;
  /** Waits until the table's files are final; `staged(table)` then returns its record. */
  ready(table: string): Promise<void>;
  /** The table's record, once ready; undefined before (in `etl run`, a table not yet reached). */
  staged(table: string): TransformTableRecord | undefined;
  /** The plan once the transform has written its section (the same object on every call). */
  final(): Promise<LoadPlan>;
}

export async function startLoad(options: LoadOptions): Promise<LoadStart> {
  const feed = options.stagedTables;
  if (!feed) return settledStart(await planLoad(options));
  options.signal?.throwIfAborted();
  const { model } = options;
  const paths = await resolveRun(options.stagingDir, options.runId ?? null);
  // The extract wrote its running section before the run was announced: whether it is a repair.
  const repair = isRepair({ manifest: await readManifest(paths) });
  const asked = options.tables ? new Set(selectTables(model, options.tables)) : null;
  const tables = (await feed.planned).filter((t) => asked === null || asked.has(t));
  const records = new Map<string, TransformTableRecord>();
  let final: Promise<LoadPlan> | null = null;
  return {
    model,
    paths,
    tables,
    dryRun: options.dryRun === true,
    repair,
    fed: true,
    ready: async (table) => void records.set(table, await feed.record(table)),
    staged: (table) => records.get(table),
    final: () => (final ??= finalPlan(options, feed, tables, records)),
  };
}

function settledStart(plan: LoadPlan): LoadStart {
  const staged = (table: string): TransformTableRecord => plan.manifest.stages.transform!.tables[table]!;
  const final = Promise.resolve(plan);
  return { ...plan, repair: isRepair(plan), fed: false, ready: async () => undefined, staged, final: () => final };
}

/** The plan of the finished transform; it must hold what the load was fed. */
async function finalPlan(options: LoadOptions, feed: StagedTablesFeed, tables: readonly string[], used: ReadonlyMap<string, TransformTableRecord>): Promise<LoadPlan> {
  await feed.finished;
  // Not interrupted by the signal: an interrupted load reads this plan to record its failure, as an
  // interrupted `etl load` does (its plan was read before), and reading it changes nothing.
  const plan = await planLoad({ ...options, signal: undefined });
  // As JSON: the manifest holds what JSON keeps of a record.
  const json = (r: unknown): unknown => JSON.parse(JSON.stringify(r ?? null));
  const differs = [...used].filter(([t, r]) => !isDeepStrictEqual(json(plan.manifest.stages.transform!.tables[t]), json(r)));
  if (!isDeepStrictEqual(plan.tables, tables) || differs.length > 0) {
    throw new Error(`run ${plan.paths.runId}: the tables loaded while it was transformed are not those its manifest holds (a bug)`);
  }
  return plan;
}
