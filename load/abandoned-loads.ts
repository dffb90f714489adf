// Runs whose process died mid-way (staging/run-writer.ts), settled by the next load before its own
// work: their unfinished files go. A load that died is settled by the ledger of the database it was
// loading (this one): a run the ledger lists committed before its process died, so its manifest
// section is rebuilt and its rejects files kept, as `etl load --run` of that run would
// (load-record.ts); a run it does not list was rolled back by PostgreSQL, so its unfinished rejects
// files go.
import type pg from 'pg';
import { abandonedRuns, removeAbandonedPartials, removePartials } from '../staging/run-writer.ts';
import { appliedTables } from './ledger.ts';
import { recordAlreadyApplied } from './load-record.ts';

/** `current`: the run this load loads, whose own recovery (already applied) is the load's. */
export async function settleAbandonedLoads(client: pg.Client, stagingDir: string, destination: string, current: string): Promise<void> {
  await removeAbandonedPartials(stagingDir);
  for (const { paths, manifest } of await abandonedRuns(stagingDir)) {
    const load = manifest.stages.load;
    if (load?.status !== 'running' || manifest.destination?.description !== destination) continue;
    const applied = await appliedTables(client, paths.runId);
    if (applied.size === 0) await removePartials(paths.loadDir);
    else if (paths.runId !== current) {
      const report = { startedAt: load.started_at, dryRun: false, destination, endedAt: new Date().toISOString(), skipped: [], warnings: [] };
      await recordAlreadyApplied(paths, report, applied, load);
      await removePartials(paths.loadDir); // what the ledger does not vouch for
    }
  }
}
