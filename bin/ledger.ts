// The ledger (etl_runs) of the configured database, for `etl runs` and `etl report`: read through
// the SSH tunnel in remote mode; an unreachable database is an answer (the problem), not an error.
import type { EtlConfig } from '../connect/config.ts';
import { openEndpoints } from '../connect/endpoints.ts';
import { readLedger, type Ledger } from '../report/ledger.ts';

/** The ledger of the configured database (through the SSH tunnel in remote mode), or why not. */
export async function ledgerOf(cfg: EtlConfig, explicitUrl: boolean, signal: AbortSignal): Promise<Ledger> {
  try {
    const ep = await openEndpoints(cfg, { needMongo: false, needPostgres: !explicitUrl, signal });
    try {
      return await readLedger(explicitUrl ? cfg.postgres : ep.postgres, ep.describe.postgres, cfg.secrets);
    } finally {
      await ep.close();
    }
  } catch (error) {
    return { destination: null, runs: [], problem: error instanceof Error ? error.message : String(error) };
  }
}

