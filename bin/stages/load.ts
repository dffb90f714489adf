// The load stage as the commands show it. Load reports per table, not per row, so the rows each
// table will take come from the run's manifest (transform's CSV counts): percent and time left
// follow the rows loaded so far.
import { runLoad, type LoadOptions, type LoadProgress, type LoadReport, type TableLoadReport } from '../../load/index.ts';
import { formatTable } from '../../report/text-table.ts';
import { readManifest } from '../../staging/manifest.ts';
import { resolveRun } from '../../staging/run-folder.ts';
import type { CommandContext } from '../command.ts';
import { paint } from '../output.ts';
import { count, duration } from '../progress/meter.ts';
import { parseLockTimeout } from '../../load/lock.ts';
import { UsageError } from '../../errors/etl-error.ts';
import type { ProgressView, StageTracker } from '../progress/view.ts';
import type { PostgresConfig } from '../../connect/config.ts';
import { writeWarnings, type FlowEnv } from '../stage-flow.ts';

export const LOAD_FLAGS = {
  'dry-run': { type: 'boolean' },
  'no-wait': { type: 'boolean' },
  'lock-timeout': { type: 'string' },
  'allow-delete-all': { type: 'boolean' },
  'database-url': { type: 'string' },
} as const;

/** --no-wait fails at once, --lock-timeout D waits at most D, else the load waits for the lock. */
function lockPolicy(flags: { 'no-wait'?: boolean; 'lock-timeout'?: string }): LoadOptions['lock'] {
  if (flags['no-wait']) return 'fail';
  return flags['lock-timeout'] !== undefined ? { timeoutMs: parseLockTimeout(flags['lock-timeout']) } : 'wait';
}

/**
 * The lock flags checked as soon as they are parsed, before anything connects: both together would
 * leave one of them unused, silently (a script asking for a bounded wait would fail at once instead).
 */
export function checkLockFlags(flags: { 'no-wait'?: boolean; 'lock-timeout'?: string }): void {
  if (flags['no-wait'] && flags['lock-timeout'] !== undefined) {
    throw new UsageError('bad_arguments', '--no-wait and --lock-timeout cannot be combined', {
      hint: '--no-wait fails at once when another etl load holds the lock; --lock-timeout D waits at most D: give one',
    });
  }
  lockPolicy(flags);
}

type LoadFlags = { readonly 'dry-run'?: boolean; readonly 'no-wait'?: boolean; readonly 'lock-timeout'?: string; readonly 'allow-delete-all'?: boolean };

/** What runLoad gets from the flags, the configuration and the chosen PostgreSQL. */
export function loadOptions(flags: LoadFlags, env: FlowEnv, o: { runId: string | null; tables: readonly string[] | undefined; postgres: PostgresConfig }): Omit<LoadOptions, 'onProgress'> {
  return {
    model: env.model,
    stagingDir: env.config.stagingDir,
    runId: o.runId,
    tables: o.tables ?? null,
    dryRun: flags['dry-run'] === true,
    postgres: o.postgres,
    secrets: env.config.secrets,
    lock: lockPolicy(flags),
    allowDeleteAll: flags['allow-delete-all'] === true,
    signal: env.ctx.signal,
  };
}

export async function loadStage(view: ProgressView, options: Omit<LoadOptions, 'onProgress'>): Promise<LoadReport> {
  const staged = await stagedRows(options.stagingDir, options.runId ?? null);
  return view.stage({ name: 'load', title: 'Load: connecting, locking, checking what this run already applied', summary: (r) => loadLine(r) }, (tracker) =>
    runLoad({ ...options, onProgress: loadTracker(tracker, staged) }),
  );
}

/** Rows transform staged per table, when the run and its manifest can be read (else unknown). */
async function stagedRows(stagingDir: string, runId: string | null): Promise<Map<string, number>> {
  try {
    const manifest = await readManifest(await resolveRun(stagingDir, runId));
    return new Map(Object.entries(manifest.stages.transform?.tables ?? {}).map(([t, r]) => [t, r.rows]));
  } catch {
    return new Map(); // load itself says what is wrong with the run
  }
}

function loadTracker(t: StageTracker, staged: ReadonlyMap<string, number>) {
  return (e: LoadProgress): void => {
    switch (e.kind) {
      case 'waiting':
        return t.notice(e.message);
      case 'started':
        return t.plan(
          e.tables.length ? `Load run ${e.runId}: ${e.tables.length} table(s)${e.alreadyApplied.length ? ` (${e.alreadyApplied.length} already loaded, skipped)` : ''}` : `Load run ${e.runId}: nothing to load`,
          e.tables.map((name) => ({ name, total: staged.get(name) ?? null })),
          'rows',
        );
      case 'table_phase':
        return t.phase(e.table, e.phase);
      case 'table_done':
        t.progress(e.table, e.report.rows, e.report.rows);
        return t.finish(e.table, tableLine(e.report));
      case 'committing':
        return t.phase(null, e.dryRun ? 'rolling back (dry run)' : 'committing');
    }
  };
}

/** `users: 1,600 staged, 1,590 inserted, 10 rejected` — only the figures that are not zero. */
function tableLine(r: TableLoadReport): string {
  const staged = r.merge === 'dedupe_upsert' ? `${count(r.rows)} staged (from ${count(r.staged)} contributions)` : `${count(r.rows)} staged`;
  const parts: string[] = [];
  for (const k of ['inserted', 'updated', 'unchanged', 'deleted', 'rejected', 'nulled', 'orphaned', 'duplicates'] as const) if (r[k] > 0) parts.push(`${count(r[k])} ${k}`);
  if (r.truncated.length) parts.push(`truncated (cascade: ${r.truncated.join(', ')})`);
  return `${r.table}: ${staged}${parts.length ? `, ${parts.join(', ')}` : ''}`;
}

const sum = (r: LoadReport, k: 'rows' | 'inserted' | 'updated' | 'deleted' | 'rejected' | 'nulled') => r.tables.reduce((a, t) => a + t[k], 0);

/** `44,700 inserted, 0 updated, 0 deleted, 300 rejected`: what the load did with the rows, for the load's line and etl run's. */
export function appliedFigures(r: LoadReport): string {
  return (['inserted', 'updated', 'deleted', 'rejected'] as const).map((k) => `${count(sum(r, k))} ${k}`).join(', ');
}

/** Rows of a table waiting in etl_pending after the load: held back, or loaded with a NULL reference. */
export function pendingOf(t: TableLoadReport): number {
  return t.pending ? t.pending.rows + t.pending.nulls : 0;
}

/** `load: 45,000 rows into 31 table(s): 44,700 inserted, 0 updated, 0 deleted, 300 rejected, in 1.10 s; run X loaded into …` */
function loadLine(r: LoadReport, ms = Date.parse(r.endedAt) - Date.parse(r.startedAt)): string {
  if (r.alreadyApplied) return `load: run ${r.runId} was already loaded into ${r.destination}: nothing changed (${duration(ms)})`;
  const pending = r.pending ? r.pending.rows + r.pending.nulls : 0;
  const what = `${count(sum(r, 'rows'))} rows into ${r.tables.length} table(s): ${appliedFigures(r)}${pending ? `, ${count(pending)} pending` : ''}`;
  const end = r.dryRun ? `dry run: run ${r.runId} rolled back, nothing changed in ${r.destination}` : `run ${r.runId} loaded into ${r.destination}`;
  return `load: ${what}, in ${duration(ms)}; ${end}`;
}

/** The --json document: the report, with the snake_case names scripts have read since the first release. */
export function loadJson(r: LoadReport) {
  return { ok: true, ...r, run_id: r.runId, dry_run: r.dryRun, already_applied: r.alreadyApplied };
}

export function renderLoad(ctx: CommandContext, r: LoadReport): void {
  if (!r.alreadyApplied) {
    const headers = ['table', 'staged', 'inserted', 'updated', 'unchanged', 'deleted', 'rejected', 'nulled', 'duplicates', 'pending'];
    ctx.stdout.write(formatTable(headers, r.tables.map((t) => [t.table, t.rows, t.inserted, t.updated, t.unchanged, t.deleted, t.rejected, t.nulled, t.duplicates, pendingOf(t)])));
  }
  loadNotes(ctx, r);
}

/** What the table does not say: where rejects are, deletions, truncations, skipped tables, warnings. */
export function loadNotes(ctx: CommandContext, r: LoadReport): void {
  const color = paint(ctx.stdout, ctx.env);
  if (!r.alreadyApplied) {
    const listed = r.tables.filter((t) => t.rejectsFile).map((t) => t.table);
    if (listed.length) ctx.stdout.write(`rejected and set-NULL rows are listed in load/<table>.rejects.ndjson (${listed.length} table(s))\n`);
    renderDeletions(ctx, r);
    if (r.truncated.length) ctx.stdout.write(`${color.yellow('truncated (TRUNCATE … CASCADE):')} ${r.truncated.join(', ')}\n`);
    if (r.skipped.length) ctx.stdout.write(`already loaded from this run, skipped: ${r.skipped.map((s) => s.table).join(', ')}\n`);
    const settled = r.settled.filter((x) => x.deleted + x.nulled + x.pending.landed + x.pending.resolved > 0);
    const changed = figuresPerTable(settled, (x) => [[x.deleted, 'deleted'], [x.nulled, 'nulled'], [x.pending.landed, 'landed'], [x.pending.resolved, 'resolved']], { zeros: true });
    if (changed) ctx.stdout.write(`also changed (tables this run did not stage): ${changed}\n`);
    // The staged tables' rows held back by earlier loads that landed in this one, and their references
    // NULLed by earlier loads that it set: the table's columns (the batch's figures) do not count them.
    const arrived = figuresPerTable(r.tables, (t) => (t.pending ? [[t.pending.landed, 'landed'], [t.pending.resolved, 'resolved']] : []), { zeros: false });
    if (arrived) ctx.stdout.write(`pending settled by this load (the referenced row arrived; not in inserted or updated): ${arrived}\n`);
    const orphaned = r.tables.filter((t) => t.orphaned > 0);
    if (orphaned.length) ctx.stdout.write(`references set NULL because this load deleted the row they point at (orphaned): ${orphaned.map((t) => `${t.table} ${count(t.orphaned)}`).join(', ')}\n`);
    const waiting = r.tables.filter((t) => pendingOf(t) > 0);
    if (waiting.length) ctx.stdout.write(`pending (held back until the referenced row arrives or the unique value is theirs alone, or loaded with a NULL reference): ${waiting.map((t) => `${t.table} ${count(pendingOf(t))}`).join(', ')}; see etl status\n`);
  }
  writeWarnings(ctx, r.warnings);
}

/**
 * `users 1 landed, 2 resolved; user_companies 1 landed`: each table's figures (with `zeros: false`,
 * those that are 0 left out, and a table with none left out); '' when no table is left.
 */
function figuresPerTable<T extends { readonly table: string }>(tables: readonly T[], figuresOf: (t: T) => [number, string][], options: { zeros: boolean }): string {
  return tables
    .map((t) => ({ table: t.table, parts: figuresOf(t).filter(([n]) => options.zeros || n > 0) }))
    .filter((x) => x.parts.length > 0)
    .map((x) => `${x.table} ${x.parts.map(([n, label]) => `${count(n)} ${label}`).join(', ')}`)
    .join('; ');
}

function renderDeletions(ctx: CommandContext, r: LoadReport): void {
  if (!r.deletions) return;
  ctx.stdout.write('\ndeleted because their document is gone (delete propagation):\n');
  ctx.stdout.write(
    formatTable(
      ['table', 'live ids', 'gone', 'referencing', 'nulled'],
      r.deletions.tables.map((d) => [d.table, d.live === null ? '-' : d.live, d.gone, d.referencing, d.nulled]),
    ),
  );
}

/** The final line of `etl load`: what changed where (the already-loaded case says when it was). */
export function loadFinalLine(r: LoadReport, ms: number): string {
  if (!r.alreadyApplied) return loadLine(r, ms);
  const when = r.skipped.map((s) => s.loadedAt).sort()[0];
  return `run ${r.runId} was already loaded into ${r.destination}${when ? ` (at ${when})` : ''}: nothing changed (${duration(ms)})`;
}
