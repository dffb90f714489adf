// `etl clean`: removes old run folders under the safety rules of audit/clean.ts.
import type { Command, CommandContext } from '../command.ts';
import { paint, writeJson } from '../output.ts';
import { parseFlags } from '../flags.ts';
import { commandConfig } from '../config.ts';
import { UsageError } from '../../errors/etl-error.ts';
import { cleanRuns, parseOlderThan } from '../../audit/clean.ts';
import { formatBytes } from '../../audit/byte-size.ts';

const usage = `usage: etl clean [--keep N] [--older-than D] [--dry-run] [--staging DIR] [--json]

Removes old run folders from the staging folder and says how much space that freed.
Never removed, whatever the options:
  - the run <staging>/latest points at;
  - the newest loaded run;
  - any run not yet loaded (extract and transform done, load not done, failed or a dry run),
    unless a newer run was loaded into the database its load recorded (a failed or dry-run load)
    and that run's extract read every change it carried: each collection it read, from the same
    watermark or an earlier one (a repair's documents: only by a full read), and its load
    committed every table it transformed;
  - an unfinished run (extract or transform failed or not done) newer than the newest loaded run,
    or any unfinished run when no run was ever loaded; one whose stage is at work in a live etl
    process of this host; and one whose stage is marked running with a manifest changed within
    the last hour, unless that stage was killed.
So what goes: loaded runs older than the newest loaded run, not-loaded runs such a loaded run
superseded, and unfinished runs older than the newest loaded run (the loaded run read everything
they held: the watermark only advances on load). A run whose stage was killed (marked running,
its process gone from this host: "killed" in etl status and etl runs) is unfinished like a failed
one, and goes at once when older than the newest loaded run; a killed load is a load not done (it
may have committed: the next load into its database settles it), so its run is kept. Each removed
run is printed with why it could go. Also removed: a *.partial file in the staging folder not
written for a minute (an archive an etl pack was writing when it was killed).

options:
  --keep N          also keep the N newest runs
  --older-than D    only remove runs started before D: an age (7d, 12h, 2w, 30m) or a date
                    (2026-01-01)
  --dry-run         show what would be removed, remove nothing
  --staging DIR     staging folder (default: ETL_STAGING, else ./.etl/runs)
  --json            print the report as JSON on stdout
exit codes: 0 done (also when nothing could go), 1 failed, 2 usage or configuration error
`;

const command: Command = {
  summary: 'remove old staged runs (never latest, the newest loaded run, or one still to load)',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const flags = parseFlags(ctx.argv, {
      keep: { type: 'string' },
      'older-than': { type: 'string' },
      'dry-run': { type: 'boolean' },
      staging: { type: 'string' },
      json: { type: 'boolean' },
    });
    let keep: number | null = null;
    if (flags.keep !== undefined) {
      if (!/^\d+$/.test(flags.keep)) throw new UsageError('bad_keep', `--keep must be a whole number, got "${flags.keep}"`);
      keep = Number(flags.keep);
    }
    const olderThan = flags['older-than'] !== undefined ? parseOlderThan(flags['older-than']) : null;
    const cfg = commandConfig(ctx, { staging: flags.staging });
    const report = await cleanRuns({ stagingDir: cfg.stagingDir, keep, olderThan, dryRun: flags['dry-run'] === true });
    if (flags.json) {
      writeJson(ctx.stdout, { ok: true, ...report });
      return 0;
    }
    const color = paint(ctx.stdout, ctx.env);
    const verb = report.dry_run ? 'would remove' : 'removed';
    const lines: string[] = [];
    for (const r of report.removed) lines.push(`${verb} ${r.run_id} (${formatBytes(r.bytes)}): ${r.reason}`);
    for (const p of report.removed_partials) lines.push(`${verb} ${p.file} (${formatBytes(p.bytes)}): ${p.reason}`);
    for (const k of report.kept) lines.push(`${color.dim('kept')}  ${k.run_id}: ${k.reasons.join('; ')}`);
    const partials = report.removed_partials.length;
    lines.push(
      `${report.dry_run ? color.yellow('dry run:') : color.green('done:')} ${verb} ${report.removed.length} run${report.removed.length === 1 ? '' : 's'}` +
        `${partials ? ` and ${partials} unfinished .partial file${partials === 1 ? '' : 's'}` : ''}, ` +
        `${report.dry_run ? 'would free' : 'freed'} ${formatBytes(report.freed_bytes)} (${report.freed_bytes.toLocaleString('en-US')} bytes); kept ${report.kept.length}`,
    );
    ctx.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};

export default command;
