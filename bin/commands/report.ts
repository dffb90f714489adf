// `etl report`: one self-contained HTML file about a run (stage timings, rows per table, rejects by
// reason with examples, watermarks, count reconciliation, the last runs' durations and rows).
import { printableLine } from '../../errors/printable.ts';
import type { Command, CommandContext } from '../command.ts';
import { writeJson } from '../output.ts';
import { outputFile, parseFlags } from '../flags.ts';
import { commandConfig } from '../config.ts';
import { formatBytes } from '../../audit/byte-size.ts';
import { REPORT_FILE, writeRunReport } from '../../report/write-report.ts';
import { checkLedgerFlags, ledgerOf } from '../ledger.ts';

const usage = `usage: etl report [--run ID] [--out FILE] [--staging DIR] [--database-url URL | --no-ledger]
                  [--json]

Writes one self-contained HTML file about a run, for people: stage timings, rows in and out per
table, rejected rows (and documents extract could not stage) by reason with a few examples
(values cut short, secrets never shown), the watermark before and after, the count
reconciliation, and charts of the last runs' durations and row counts. It needs no network to
open: no script, no external file. \`etl pack\` puts it first in the archive.

options:
  --run ID            the run (default, or latest: the one <staging>/latest names)
  --out FILE          where to write it (default: <staging>/<run>/${REPORT_FILE})
  --staging DIR       staging folder (default: ETL_STAGING, else ./.etl/runs)
  --database-url URL  the ledger's database: it adds loaded runs whose files were cleaned to the
                      charts (default: DATABASE_URL, else POSTGRES_*; unreachable: staged runs only)
  --no-ledger         do not read the ledger
  --json              print {run_id, file, bytes} as JSON on stdout
exit codes: 0 written, 1 failed (no such run…), 2 usage or configuration error
`;

const command: Command = {
  summary: 'write a self-contained HTML report of a run (what auditors open first)',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const flags = parseFlags(ctx.argv, {
      run: { type: 'string' },
      out: { type: 'string' },
      staging: { type: 'string' },
      'database-url': { type: 'string' },
      'no-ledger': { type: 'boolean' },
      json: { type: 'boolean' },
    });
    checkLedgerFlags(flags);
    const out = outputFile(ctx.cwd, flags.out, 'report.html');
    const cfg = commandConfig(ctx, { staging: flags.staging, databaseUrl: flags['database-url'] });
    const ledger = flags['no-ledger'] ? null : await ledgerOf(cfg, flags['database-url'] !== undefined, ctx.signal);
    const r = await writeRunReport({
      stagingDir: cfg.stagingDir,
      runId: flags.run ?? null,
      out,
      ledger: ledger?.problem ? null : ledger,
      secrets: cfg.secrets,
    });
    if (flags.json) writeJson(ctx.stdout, { ok: true, ...r });
    // The file's folder is input (a checkout's, --out): shown with its controls escaped.
    else ctx.stdout.write(`report of run ${r.run_id}: ${printableLine(r.file)} (${formatBytes(r.bytes)})\n`);
    return 0;
  },
};

export default command;
