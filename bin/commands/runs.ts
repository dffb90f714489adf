// `etl runs`: the staged runs, newest first, from their manifests.
import type { Command, CommandContext } from '../command.ts';
import { writeJson } from '../output.ts';
import { formatTable } from '../../report/text-table.ts';
import { parseFlags } from '../flags.ts';
import { commandConfig } from '../config.ts';
import { listRuns } from '../../audit/runs.ts';
import { formatBytes } from '../../audit/byte-size.ts';

const usage = `usage: etl runs [--staging DIR] [--json]

Lists the staged runs, newest first: the stages each finished, documents extracted, rows
transformed, rows rejected (transform and load), whether it was loaded, and its size on disk.
The run <staging>/latest points at is marked with *.

options:
  --staging DIR     staging folder (default: ETL_STAGING, else ./.etl/runs)
  --json            print the list as JSON on stdout
`;

const command: Command = {
  summary: 'list staged runs, newest first',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const flags = parseFlags(ctx.argv, { staging: { type: 'string' }, json: { type: 'boolean' } });
    const cfg = commandConfig(ctx, { staging: flags.staging });
    const report = await listRuns({ stagingDir: cfg.stagingDir });
    if (flags.json) {
      writeJson(ctx.stdout, { ok: true, ...report });
      return 0;
    }
    if (report.runs.length === 0) {
      ctx.stdout.write(`no staged runs in ${report.staging}\n`);
      return 0;
    }
    const n = (v: number | null) => (v === null ? '-' : v.toLocaleString('en-US'));
    const rows = report.runs.map((r) => [
      `${r.latest ? '*' : ' '} ${r.run_id}`,
      r.problem ? 'damaged' : stagesText(r.stages),
      n(r.documents),
      n(r.rows),
      n(r.rejects),
      r.loaded ? 'yes' : r.stages.load === 'done' ? 'dry run' : 'no',
      formatBytes(r.bytes),
    ]);
    ctx.stdout.write(formatTable(['run', 'stages', 'documents', 'rows', 'rejects', 'loaded', 'size'], rows));
    for (const r of report.runs.filter((x) => x.problem)) ctx.stderr.write(`${r.run_id}: ${r.problem}\n`);
    ctx.stdout.write(`${report.runs.length} run${report.runs.length === 1 ? '' : 's'} in ${report.staging}${report.latest ? `; * = latest (${report.latest})` : ''}\n`);
    return 0;
  },
};

/** `extract, transform, load` for done stages; others with their status (`load failed`). */
function stagesText(stages: Record<string, string | null>): string {
  const parts = Object.entries(stages)
    .filter(([, s]) => s !== null)
    .map(([name, s]) => (s === 'done' ? name : `${name} ${s}`));
  return parts.join(', ') || 'none';
}

export default command;
