// `etl pack`: one .tar.gz of a finished run (manifest, pipeline.yaml, NDJSON, CSVs, keys, rejects)
// for auditors who have neither our databases nor our machines.
import { printableLine } from '../../errors/printable.ts';
import type { Command, CommandContext } from '../command.ts';
import { paint, writeJson } from '../output.ts';
import { outputFile, parseFlags } from '../flags.ts';
import { commandConfig } from '../config.ts';
import { packRun, type PackProgress } from '../../audit/pack.ts';
import { describeStages } from '../../staging/manifest.ts';
import { formatBytes, throttled } from '../../audit/byte-size.ts';
import { UsageError } from '../../errors/etl-error.ts';

const usage = `usage: etl pack [--run ID] [--staging DIR] [--out FILE] [--json]

Packs a finished run into one .tar.gz: its HTML report first (etl report, written now), then
manifest.json, the pipeline.yaml the run was made with,
the extract NDJSON, the transform CSVs, keys and rejects files, and load's rejects files when the
run was loaded. Anyone can then check it with \`etl verify FILE\`, without MongoDB or PostgreSQL.

Refuses a run whose extract or transform is not done, or whose load is still running, and a run
any of whose files holds what looks like a secret: a connection string with a password,
password=…, a private key, an AWS key, a configured password; or a file named like one (.env,
id_rsa, *.pem). It names the file and the line. Every file is read once and scanned as it goes
into FILE.partial, which is renamed to FILE only when the whole run is in and nothing was found.
At the first finding nothing more is written and FILE.partial is removed at once; the rest of the
run is still scanned, so the refusal names every finding. A FILE.partial left by a pack that was
killed is removed by the next pack to FILE (and said so); one written within the last minute may be
another pack's, still running: refused.

options:
  --run ID          the run (default, or latest: the one <staging>/latest names)
  --staging DIR     staging folder (default: ETL_STAGING, else ./.etl/runs)
  --out FILE        the archive (default: <staging>/<run-id>.tar.gz)
  --json            print the report as JSON on stdout
exit codes: 0 packed, 1 refused or failed, 2 usage or configuration error
`;

/** Runs above this size get progress lines on stderr (not with --quiet: the final line only). */
const BIG_RUN_BYTES = 64 * 1024 * 1024;

const command: Command = {
  summary: 'pack a finished run into one .tar.gz for auditors',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const flags = parseFlags(ctx.argv, { run: { type: 'string' }, staging: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } });
    // FILE.partial names an unfinished file everywhere in etl: `etl verify` refuses one.
    if (flags.out?.endsWith('.partial')) {
      throw new UsageError('bad_arguments', `--out ${flags.out}: a name ending in .partial is what etl gives unfinished files`, { hint: 'name the archive FILE.tar.gz' });
    }
    const out = outputFile(ctx.cwd, flags.out, 'run.tar.gz');
    const cfg = commandConfig(ctx, { staging: flags.staging });
    const show = throttled((p: PackProgress) => {
      const done = `${p.filesDone}/${p.filesTotal} files, ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}`;
      ctx.stderr.write(p.phase === 'pack' ? `packing: ${done}, archive ${formatBytes(p.archiveBytes)}\n` : `not packing (a secret was found, the archive removed), scanning the rest: ${done}\n`);
    });
    const report = await packRun({
      stagingDir: cfg.stagingDir,
      runId: flags.run ?? null,
      out,
      secrets: cfg.secrets,
      signal: ctx.signal,
      onNote: (text) => ctx.stderr.write(`note: ${text}\n`),
      onProgress: (p) => {
        if (p.bytesTotal >= BIG_RUN_BYTES && ctx.verbosity !== 'quiet') show(p);
      },
    });
    if (flags.json) {
      writeJson(ctx.stdout, { ok: true, ...report });
      return 0;
    }
    const color = paint(ctx.stdout, ctx.env);
    const stages = describeStages(report.stages);
    ctx.stdout.write(
      [
        `${color.green('packed')} run ${report.run_id} (${stages}; in the archive: ${report.stages_included.join(', ')})`,
        `  archive  ${printableLine(report.archive)}`,
        `  files    ${report.files} (${formatBytes(report.content_bytes)} before compression)`,
        `  size     ${report.bytes.toLocaleString('en-US')} bytes (${formatBytes(report.bytes)})`,
        `  sha256   ${report.sha256}`,
        ...(report.left_out.length ? [`  left out (not recorded by a finished stage): ${report.left_out.join(', ')}`] : []),
        `check it anywhere with: etl verify ${printableLine(report.archive)}`,
        '',
      ].join('\n'),
    );
    return 0;
  },
};

export default command;
