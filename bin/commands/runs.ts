// `etl runs`: the history of runs, newest first: the staged runs (from their manifests) and the
// runs the ledger in PostgreSQL recorded as loaded (when it can be reached).
import type { Command, CommandContext } from '../command.ts';
import { writeJson } from '../output.ts';
import { printableLine } from '../../errors/printable.ts';
import { parseFlags } from '../flags.ts';
import { commandConfig } from '../config.ts';
import { duration } from '../progress/meter.ts';
import { checkLedgerFlags, ledgerOf } from '../ledger.ts';
import { loadedText, runHistory, type RunHistory, type RunHistoryEntry } from '../../report/run-history.ts';
import { formatTable } from '../../report/text-table.ts';

const usage = `usage: etl runs [--staging DIR] [--database-url URL | --no-ledger] [--json]

The history of runs, newest first: when each was extracted, from where, how long each stage took,
documents extracted, rows transformed, rejects (documents extract could not stage, rows
transform and load rejected), the rows its load left pending (etl_pending, every table: also
those a --tables run did not stage), and whether it was loaded. Staged runs come from the
staging folder's manifests; runs loaded into the database (etl_runs, the ledger) are listed too,
also those whose files were cleaned.
The run <staging>/latest points at is marked with *. A stage whose process died while it ran
(SIGKILL, out of memory, a power cut) shows as "killed", with what recovers the run.

options:
  --staging DIR       staging folder (default: ETL_STAGING, else ./.etl/runs)
  --database-url URL  the database whose ledger to read (default: DATABASE_URL, else POSTGRES_*)
  --no-ledger         do not read the ledger (staged runs only)
  --json              print the history as JSON on stdout
exit codes: 0 listed (an unreachable ledger is a note, not a failure), 2 usage or configuration
error
`;

const command: Command = {
  summary: 'the history of runs: stage durations, counts, rejects, loaded or not',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const flags = parseFlags(ctx.argv, { staging: { type: 'string' }, 'database-url': { type: 'string' }, 'no-ledger': { type: 'boolean' }, json: { type: 'boolean' } });
    checkLedgerFlags(flags);
    const cfg = commandConfig(ctx, { staging: flags.staging, databaseUrl: flags['database-url'] });
    const ledger = flags['no-ledger'] ? null : await ledgerOf(cfg, flags['database-url'] !== undefined, ctx.signal);
    const history = await runHistory({ stagingDir: cfg.stagingDir, ledger });
    if (flags.json) {
      writeJson(ctx.stdout, { ok: true, ...history });
      return 0;
    }
    ctx.stdout.write(renderHistory(history));
    return 0;
  },
};

const n = (v: number | null): number | string => (v === null ? '-' : v);

function stageCell(r: RunHistoryEntry, stage: 'extract' | 'transform' | 'load'): string {
  const status = r.stages[stage];
  const s = r.seconds[stage];
  if (status === 'done' && s !== null) return duration(s * 1000);
  return status ?? '-';
}

export function renderHistory(h: RunHistory): string {
  // The count comes last: it is the line --quiet keeps.
  if (h.runs.length === 0) return `${ledgerNote(h)}no runs in ${printableLine(h.staging)}${h.ledger.read ? ' nor in the ledger' : ''}\n`;
  const rows = h.runs.map((r) => [
    `${r.latest ? '*' : ' '} ${r.run_id}`,
    r.started_at.slice(0, 16).replace('T', ' '),
    // The manifest's words (a dump's path and database name): formatTable escapes their controls.
    r.source ?? '-',
    stageCell(r, 'extract'),
    stageCell(r, 'transform'),
    stageCell(r, 'load'),
    n(r.documents),
    n(r.rows),
    n(r.rejects),
    n(r.pending),
    loadedText(r),
  ]);
  const headers = ['run', 'when (UTC)', 'source', 'extract', 'transform', 'load', 'documents', 'rows', 'rejects', 'pending', 'loaded'];
  const out = [formatTable(headers, rows, { maxWidth: 132, minWidths: [undefined, undefined, 12] }).trimEnd()];
  for (const r of h.runs.filter((x) => x.problem)) out.push(`${r.run_id}: ${r.problem}`);
  for (const r of h.runs.filter((x) => x.hint)) out.push(`${r.run_id}: ${r.hint}`);
  // A run that says "failed" says why (the error is the one its stage printed, recorded redacted).
  for (const r of h.runs) for (const f of r.failures) out.push(`${r.run_id}: its ${f.stage} failed: ${printableLine(f.message.replace(/\s*\n\s*/g, ' '), 300)} [${f.code}]; ${f.hint}`);
  return `${out.join('\n')}\n${ledgerNote(h)}${h.runs.length} run${h.runs.length === 1 ? '' : 's'} (${printableLine(h.staging)}${h.latest ? `; * = latest` : ''})\n`;
}

function ledgerNote(h: RunHistory): string {
  if (h.ledger.read) return `ledger: ${h.ledger.destination}\n`;
  return h.ledger.problem ? `ledger not read (${h.ledger.problem}): loaded runs whose files were cleaned are not listed\n` : '';
}

export default command;
