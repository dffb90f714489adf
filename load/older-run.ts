// A staged run older than one already loaded into a table is refused. Its rows are the documents as
// they were when it was extracted: loading it would put back rows a newer run had updated, and its
// complete reads and delete propagation would remove rows of documents created since. The watermark
// never goes back, so no later run would read those documents again to mend them (README, Exact
// mirror).
import { LoadError } from '../errors/etl-error.ts';
import { newerRunsLoaded } from './ledger.ts';
import { tableList } from './table-list.ts';
import type pg from 'pg';

/** Throws when a run newer than `runId` set the watermark of one of `tables`; names them and what to do. */
export async function refuseOlderRun(client: pg.Client, runId: string, tables: readonly string[]): Promise<void> {
  const newer = await newerRunsLoaded(client, runId, tables);
  if (newer.length === 0) return;
  const newest = newer.map((n) => n.runId).sort().at(-1)!;
  const names = newer.map((n) => n.table);
  const others = tables.filter((t) => !names.includes(t));
  throw new LoadError(
    'run_older_than_loaded',
    `run ${runId} is older than run ${newest}, already loaded into ${tableList(names)}: its rows are the documents as they were before that run read them, so loading it would undo what it loaded; refused`,
    {
      context: { table: names[0] },
      hint:
        `run etl run (or etl extract, etl transform, etl load) to stage what changed since run ${newest}` +
        (others.length > 0 ? `; etl load --run ${runId} --tables ${others.join(',')} loads only the tables no newer run has loaded` : '') +
        '. Nothing was changed',
    },
  );
}
