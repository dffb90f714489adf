// `etl verify`: proves a run folder or a packed archive is exactly what its manifest says, and that
// its CSVs are what transform makes of its NDJSON with its own pipeline.yaml. Needs no server.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseCommandLine } from '../flags.ts';
import type { Command, CommandContext } from '../command.ts';
import { commandConfig } from '../config.ts';
import { paint, writeJson } from '../output.ts';
import { ConfigError, UsageError } from '../../errors/etl-error.ts';
import { isRunId, LATEST_FILE, resolveRun, runPaths } from '../../staging/run-folder.ts';
import { describeStages } from '../../staging/manifest.ts';
import { printableLine } from '../../errors/printable.ts';
import { verifyRun, type Mismatch, type VerifyProgress, type VerifyReport } from '../../audit/verify.ts';
import { formatBytes, throttled } from '../../audit/byte-size.ts';

const usage = `usage: etl verify <run folder | archive.tar.gz | run id | latest> [--staging DIR]
                  [--pipeline FILE] [--json]

Checks a staged run, or an archive made by \`etl pack\` (unpacked into a temporary folder, removed
afterwards), without MongoDB or PostgreSQL:
  - every file the manifest records: sha256, bytes, lines (NDJSON) or rows (CSV), recomputed;
  - no file missing, no file the manifest does not record;
  - the counts reconcile per table (documents = rows + rejected + skipped, explode parents and
    items…);
  - the stored pipeline.yaml is the one the manifest names, and transform re-run from the staged
    NDJSON with it gives byte-identical CSV, keys and rejects files;
  - report.html, which the manifest does not record: its totals, rows per table and count
    reconciliation against the manifest's (the rest of the page no checksum covers); an archive
    must hold one (etl pack writes it), a folder may not.
If the current pipeline.yaml differs from the run's, verify says so and uses the run's copy.

options:
  --staging DIR     where a run named by its id (or latest) is looked for (default:
                    ETL_STAGING, else ./.etl/runs)
  --pipeline FILE   the current pipeline file, compared with the run's (default: ETL_PIPELINE,
                    else ./pipeline.yaml)
  --json            print the report as JSON on stdout
exit codes: 0 everything matches, 1 a mismatch (the first ones are named), 2 usage or
configuration error
`;

const SHOWN = 20;
const BIG_BYTES = 64 * 1024 * 1024;

const command: Command = {
  summary: 'check a run folder or archive against its manifest, re-running transform',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const { values: flags, positionals } = parseCommandLine(ctx.argv, { pipeline: { type: 'string' }, staging: { type: 'string' }, json: { type: 'boolean' } }, { positionals: true });
    if (positionals.length !== 1) {
      throw new UsageError('bad_arguments', positionals.length === 0 ? 'verify needs a run folder or an archive' : `verify takes one run folder or archive, got ${positionals.length}`, {
        hint: 'etl verify staging/<run-id>   or   etl verify <run-id>.tar.gz',
      });
    }
    const cfg = commandConfig(ctx, { pipeline: flags.pipeline, staging: flags.staging });
    // Without --pipeline, a missing ./pipeline.yaml only means nothing to compare (an auditor's machine).
    if (flags.pipeline !== undefined && !existsSync(cfg.pipelineFile)) {
      throw new ConfigError(`--pipeline ${cfg.pipelineFile}: no such file, so the run's pipeline.yaml cannot be compared with it`, [], {
        context: { flag: '--pipeline' },
        hint: 'give the pipeline file to compare the run with, or leave --pipeline out to verify the run with its own copy alone',
      });
    }
    // A bare run id that is not a path names a run of the staging folder; `latest`, as --run says it.
    const named = positionals[0]!;
    let target = path.resolve(ctx.cwd, named);
    const byId = (isRunId(named) || named === LATEST_FILE) && !existsSync(target);
    // --staging says where a run id is looked for: with a folder or an archive it would be ignored.
    if (flags.staging !== undefined && !byId) {
      throw new UsageError('bad_arguments', `--staging applies to a run named by its id (or latest), not to a folder or an archive: ${named}`, {
        context: { flag: '--staging' },
        hint: 'leave --staging out, or name the run by its id: etl verify <run-id> --staging DIR',
      });
    }
    if (byId) target = named === LATEST_FILE ? (await resolveRun(cfg.stagingDir, LATEST_FILE)).dir : runPaths(cfg.stagingDir, named).dir;
    const show = throttled((p: VerifyProgress) => {
      ctx.stderr.write(
        p.phase === 'retransform'
          ? 'verifying: re-running transform from the staged NDJSON\n'
          : `verifying: ${p.filesDone}/${p.filesTotal} files, ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}${p.file ? ` (${p.file})` : ''}\n`,
      );
    });
    const report = await verifyRun({
      target,
      currentPipelineFile: cfg.pipelineFile,
      signal: ctx.signal,
      onProgress: (p) => {
        if (p.bytesTotal >= BIG_BYTES && ctx.verbosity !== 'quiet') show(p, p.phase === 'retransform');
      },
    });
    if (flags.json) writeJson(ctx.stdout, report);
    // --quiet keeps one line: the verdict, not the last mismatch of the list.
    else if (ctx.verbosity === 'quiet' && !report.ok) ctx.stdout.write(`${mismatchHeadline(report, paint(ctx.stdout, ctx.env))} (etl verify without --quiet lists them)\n`);
    else ctx.stdout.write(render(report, paint(ctx.stdout, ctx.env)));
    return report.ok ? 0 : 1;
  },
};

function render(r: VerifyReport, color: ReturnType<typeof paint>): string {
  const lines: string[] = [];
  const stages = describeStages(r.stages);
  lines.push(printableLine(`run ${r.run_id}${r.archive ? ` (archive ${r.archive})` : ` (${r.target})`}: ${stages}`));
  const stored = r.pipeline.stored_sha256;
  lines.push(
    `pipeline.yaml: ${stored === null ? 'missing from the run' : stored === r.pipeline.manifest_sha256 ? 'the stored copy is the one the manifest names' : 'the stored copy is NOT the one the manifest names'} (sha256 ${r.pipeline.manifest_sha256.slice(0, 12)}…)`,
  );
  for (const note of r.notes) lines.push(`${color.yellow('note:')} ${printableLine(note)}`);
  lines.push(`files: ${r.files.checked} checked (${formatBytes(r.files.bytes)}: every file manifest.json records, and pipeline.yaml), ${r.files.missing} missing, ${r.files.extra} extra`);
  lines.push(reportLine(r));
  const failed = r.identities.filter((i) => !i.ok).length;
  lines.push(`counts: ${r.identities.length - failed} of ${r.identities.length} identities hold`);
  lines.push(
    r.retransform.ran
      ? `re-transform: ${r.retransform.tables} tables, ${r.retransform.files_identical} of ${r.retransform.files_compared} files byte-identical`
      : `re-transform: not run (${r.retransform.skipped_because})`,
  );
  if (r.ok) {
    lines.push(`${color.green('OK:')} run ${r.run_id} is exactly what its manifest says`);
  } else {
    lines.push(`${mismatchHeadline(r, color)}${r.mismatches.length > SHOWN ? ` (first ${SHOWN} shown; --json lists all)` : ''}:`);
    // A mismatch names what the archive holds (entry names, values): input, shown as a printable line.
    for (const m of r.mismatches.slice(0, SHOWN)) lines.push(printableLine(`  ${describe(m)}`));
  }
  return `${lines.join('\n')}\n`;
}

/** What verify did with report.html, which no checksum covers: an auditor is not told more than that. */
function reportLine(r: VerifyReport): string {
  const { file, present, compared, differs } = r.report;
  if (!present) return r.archive ? `${file}: missing from the archive` : `${file}: none in the run folder, not checked (\`etl report\` writes it)`;
  const outcome = differs.length === 0 ? 'match manifest.json' : `compared, ${differs.join(', ')} differ from manifest.json`;
  return `${file}: ${compared.join(', ')} ${outcome}; the rest of the page is covered by no checksum`;
}

const mismatchHeadline = (r: VerifyReport, color: ReturnType<typeof paint>): string =>
  `${color.red('MISMATCH:')} ${r.mismatches.length} difference${r.mismatches.length === 1 ? '' : 's'}`;

function describe(m: Mismatch): string {
  const what = [m.file, m.table && !m.file ? `table ${m.table}` : null, m.field && !m.file ? m.field : null].filter(Boolean).join(' ') || 'run';
  return `[${m.check}] ${what}: expected ${m.expected}, found ${m.found}${m.detail ? ` — ${m.detail}` : ''}`;
}

export default command;
