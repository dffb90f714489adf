// The ledger (etl_runs) of the configured database, for `etl runs` and `etl report`: read through
// the SSH tunnel in remote mode; an unreachable database is an answer (the problem), not an error.
import { describePostgres, type EtlConfig } from '../connect/config.ts';
import { openEndpoints } from '../connect/endpoints.ts';
import { UsageError } from '../errors/etl-error.ts';
import { readLedger, type Ledger } from '../report/ledger.ts';

/** --no-ledger with --database-url: the database named would not be read, so both are refused. */
export function checkLedgerFlags(flags: { readonly 'no-ledger'?: boolean; readonly 'database-url'?: string }): void {
  if (flags['no-ledger'] && flags['database-url'] !== undefined) {
    throw new UsageError('bad_arguments', '--no-ledger and --database-url cannot be combined', {
      context: { flag: '--no-ledger' },
      hint: '--database-url names the database whose ledger is read; --no-ledger reads none: give one',
    });
  }
}

/** The ledger of the configured database (through the SSH tunnel in remote mode), or why not. */
export async function ledgerOf(cfg: EtlConfig, explicitUrl: boolean, signal: AbortSignal): Promise<Ledger> {
  try {
    const ep = await openEndpoints(cfg, { needMongo: false, needPostgres: !explicitUrl, signal });
    try {
      // --database-url: that database, read directly (no tunnel), and named as such.
      const postgres = explicitUrl ? cfg.postgres : ep.postgres;
      return await readLedger(postgres, describePostgres(postgres), cfg.secrets);
    } finally {
      await ep.close();
    }
  } catch (error) {
    return { destination: null, runs: [], problem: error instanceof Error ? error.message : String(error) };
  }
}

