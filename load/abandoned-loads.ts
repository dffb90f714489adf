// Runs whose process died mid-way (staging/run-writer.ts), settled by the next load before its own
// work: their unfinished files go. A load that died is settled by the ledger of the database it was
// loading (this one): a run the ledger lists committed before its process died, so its manifest
// section is rebuilt and its rejects files kept, as `etl load --run` of that run would
// (load-record.ts); a run it does not list was rolled back by PostgreSQL, so its unfinished rejects
// files go.
import type pg from 'pg';
import { abandonedRun, removePartials, type AbandonedSweep } from '../staging/run-writer.ts';
import { appliedTables } from './ledger.ts';
import { recordAlreadyApplied } from './load-record.ts';

/**
 * `swept`: the killed runs found when the command started, their other unfinished files removed;
 * each is checked again here, under the load lock (another load may have settled or loaded it
 * since). `current`: the run this load loads, whose own recovery (already applied) is the load's.
 */
export async function settleAbandonedLoads(client: pg.Client, swept: AbandonedSweep, destination: string, current: string): Promise<void> {
  for (const found of swept.runs) {
    if (found.manifest.stages.load?.status !== 'running') continue;
    const run = await abandonedRun(found.paths);
    if (run === null) continue;
    const { paths, manifest } = run;
    const load = manifest.stages.load;
    if (load?.status !== 'running' || manifest.destination?.description !== destination) continue;
    const applied = await appliedTables(client, paths.runId);
    if (applied.size === 0) await removePartials(paths.loadDir);
    else if (paths.runId !== current) {
      const report = { startedAt: load.started_at, dryRun: false, destination, endedAt: new Date().toISOString(), skipped: [], warnings: [] };
      await recordAlreadyApplied(paths, report, applied);
      await removePartials(paths.loadDir); // what the ledger does not vouch for
    }
  }
}
