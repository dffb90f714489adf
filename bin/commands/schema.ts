// `etl schema`: creates the tables pipeline.yaml describes (and the tool's state tables) where they
// are missing; `--check` compares the database with the YAML and prints the DDL that would fix each
// difference (exit 1 when they differ); `--dry-run` prints the DDL without connecting.
import type { Command, CommandContext } from '../command.ts';
import { paint, writeJson } from '../output.ts';
import { parseFlags } from '../flags.ts';
import { commandConfig } from '../config.ts';
import { describePostgres } from '../../connect/config.ts';
import { openEndpoints } from '../../connect/endpoints.ts';
import { connectPostgres } from '../../connect/postgres.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { UsageError } from '../../model/errors.ts';
import { applySchema, schemaSql } from '../../schema/apply.ts';
import { checkDrift, type DriftReport } from '../../schema/drift.ts';

const usage = `usage: etl schema [--check] [--dry-run] [--json] [--database-url URL] [--pipeline FILE]

Creates the tables of pipeline.yaml that are missing, in load order, with their primary keys,
unique constraints and foreign keys, plus the tool's state tables (etl_watermarks, etl_runs).
An existing table is never altered: --check reports how it differs and the DDL that would fix it.

options:
  --check             compare the database with pipeline.yaml; print each difference and its fix
                      (a drop is only suggested, as a comment); exit 1 when they differ
  --dry-run           print the CREATE statements without connecting
  --json              print the report as JSON on stdout
  --database-url URL  the PostgreSQL database (default: DATABASE_URL, else POSTGRES_*)
  --pipeline FILE     the pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
exit codes: 0 done (or no difference), 1 differences found or failure, 2 usage or configuration
`;

const command: Command = {
  summary: 'create the tables of pipeline.yaml; --check reports drift with the fixing DDL',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const flags = parseFlags(ctx.argv, {
      check: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
      'database-url': { type: 'string' },
      pipeline: { type: 'string' },
    });
    if (flags.check && flags['dry-run']) throw new UsageError('bad_arguments', '--check and --dry-run cannot be combined', { hint: 'see etl schema --help' });
    const cfg = commandConfig(ctx, { pipeline: flags.pipeline, databaseUrl: flags['database-url'] });
    const model = await loadPipeline(cfg.pipelineFile, { globalDateThreshold: cfg.globalDateThreshold });
    const color = paint(ctx.stdout, ctx.env);

    if (flags['dry-run']) {
      const statements = schemaSql(model);
      if (flags.json) writeJson(ctx.stdout, { ok: true, dryRun: true, statements });
      else ctx.stdout.write(statements.map((s) => `${s.sql};\n`).join('\n'));
      return 0;
    }

    // TRANSFER_DESTINATION=remote: through an SSH tunnel (an explicit --database-url is used as given).
    const endpoints = await openEndpoints(cfg, { needMongo: false, needPostgres: flags['database-url'] === undefined, signal: ctx.signal });
    const postgres = flags['database-url'] === undefined ? endpoints.postgres : cfg.postgres;
    const destination = describePostgres(postgres);
    let client;
    try {
      client = await connectPostgres(postgres, cfg.secrets);
    } catch (error) {
      await endpoints.close();
      throw error;
    }
    try {
      if (flags.check) {
        const drift = await checkDrift(client, model);
        if (flags.json) writeJson(ctx.stdout, { ok: drift.clean, destination, ...drift });
        else ctx.stdout.write(renderDrift(drift, destination, color));
        return drift.clean ? 0 : 1;
      }
      const report = await applySchema(client, model);
      const drift = await checkDrift(client, model);
      if (flags.json) {
        writeJson(ctx.stdout, { ok: true, destination, created: report.created, existing: report.existing, drift: drift.findings });
        return 0;
      }
      const out: string[] = [];
      out.push(`${destination}: ${report.created.length} table(s) created, ${report.existing.length} already there`);
      for (const t of report.created) out.push(`  ${color.green('created')}  ${t}`);
      for (const t of report.existing) out.push(`  ${color.dim('exists ')}  ${t}`);
      if (!drift.clean) {
        out.push('', color.yellow(`${drift.findings.length} difference(s) between the database and pipeline.yaml: run \`etl schema --check\` to see them and the DDL that fixes them`));
      }
      ctx.stdout.write(`${out.join('\n')}\n`);
      return 0;
    } finally {
      await client.end().catch(() => undefined);
      await endpoints.close();
    }
  },
};

function renderDrift(drift: DriftReport, destination: string, color: ReturnType<typeof paint>): string {
  if (drift.clean) return `${color.green('no difference:')} ${destination} matches pipeline.yaml (${drift.tablesChecked} tables checked)\n`;
  const out = [`${color.yellow(`${drift.findings.length} difference(s)`)} between ${destination} and pipeline.yaml:`, ''];
  for (const f of drift.findings) {
    out.push(`${f.table}: ${f.message}`);
    for (const sql of f.fix) out.push(sql.startsWith('--') ? `  ${color.dim(sql)}` : `  ${sql.replace(/\n/g, '\n  ')};`);
    out.push('');
  }
  return `${out.join('\n')}`;
}

export default command;
