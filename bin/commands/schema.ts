// `etl schema`: makes the database match pipeline.yaml. Missing tables (and the tool's state tables
// and their new columns) are created without asking, as load would create them; changes to existing
// tables that lose nothing are printed, then applied after `Apply these schema updates? (yes/no)` on
// a terminal, or with --yes; changes that lose or may reject data only when --allow names them.
// `--check` reports (exit 1 on any difference); `--dry-run` prints the CREATE statements offline.
import process from 'node:process';
import type pg from 'pg';
import { createInterface } from 'node:readline/promises';
import type { Command, CommandContext } from '../command.ts';
import { paint, writeJson } from '../output.ts';
import { parseFlags } from '../flags.ts';
import { commandConfig } from '../config.ts';
import { describePostgres, type PostgresConfig } from '../../connect/config.ts';
import { openEndpoints } from '../../connect/endpoints.ts';
import { connectPostgres, inTransaction, requireUtf8Database } from '../../connect/postgres.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import type { PipelineModel } from '../../model/types.ts';
import { UsageError } from '../../errors/etl-error.ts';
import { applySchema, dataProblems, previewSchema, schemaSql, type SchemaReport } from '../../schema/apply.ts';
import { parseAllow, type Decision, type SchemaChange, type SchemaPlan } from '../../schema/changes.ts';
import { checkDrift, type DriftReport } from '../../schema/drift.ts';
import { setNullabilitySql } from '../../schema/ddl.ts';

const usage = `usage: etl schema [--yes] [--allow CHANGE]... [--json] [--database-url URL] [--pipeline FILE]
       etl schema --check [--allow CHANGE]... [--json] [--database-url URL] [--pipeline FILE]
       etl schema --dry-run [--json] [--pipeline FILE]

Makes the database match pipeline.yaml, in one transaction:
  - created without asking: missing tables (load order, keys, foreign keys DEFERRABLE INITIALLY
    IMMEDIATE), the tool's state tables, and columns a newer etl adds to them;
  - applied after confirmation: changes that lose nothing - new columns, widened types
    (VARCHAR(100) -> VARCHAR(255), SMALLINT -> INTEGER, VARCHAR(n) -> TEXT ...), dropped NOT NULL,
    NOT NULL where no row holds NULL, new primary keys, unique constraints and foreign keys
    (checked against the rows first: a violation is shown with examples and nothing is applied),
    foreign keys made deferrable, constraints etl named that pipeline.yaml no longer has;
  - never applied unless named by --allow: changes that lose or may reject data.
A table whose mapping changed is read in full by the next run (see README: schema evolution).

options:
  --yes               apply without asking (scripts, CI); without a terminal and without --yes,
                      nothing is applied when an existing table would change (exit 2)
  --allow CHANGE      also apply this change (repeatable, or comma-separated):
                        drop-column:TABLE.COLUMN     drop a column pipeline.yaml no longer has
                        type:TABLE.COLUMN            a type change that is not a widening (rows
                                                     whose value does not convert are deleted)
                        not-null:TABLE.COLUMN        NOT NULL over NULLs (those rows are deleted)
                        rename-column:TABLE.OLD=NEW  rename instead of drop + add (keeps values)
                        add-column:TABLE.COLUMN      add a column that looks like a rename
                        primary-key:TABLE            replace the primary key
                        drop-constraint:TABLE.NAME   drop a unique or foreign key etl did not make
  --check             report each difference, its DDL and what etl schema would do; exit 1 when
                      the database differs from pipeline.yaml
  --dry-run           print the CREATE statements without connecting
  --json              print the report as JSON on stdout
  --database-url URL  the PostgreSQL database (default: DATABASE_URL, else POSTGRES_*)
  --pipeline FILE     the pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
exit codes: 0 done (or no difference); 1 differences found (--check), a key the rows break, a
change load needs left unapplied, answered no, or failure; 2 usage, configuration, or confirmation
needed without a terminal
`;

/** Created without asking: nothing existing changes (load's ensureSchema creates them too). */
const CREATION = new Set(['create_table', 'create_state_table', 'add_state_column']);

type Color = ReturnType<typeof paint>;

const command: Command = {
  summary: 'make the database match pipeline.yaml (--allow for lossy changes; --check compares)',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const flags = parseFlags(ctx.argv, {
      check: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      yes: { type: 'boolean' },
      allow: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      'database-url': { type: 'string' },
      pipeline: { type: 'string' },
    });
    refuseIgnoredFlags(flags);
    const allow = parseAllow(flags.allow ?? []);
    const cfg = commandConfig(ctx, { pipeline: flags.pipeline, databaseUrl: flags['database-url'] });
    const model = await loadPipeline(cfg.pipelineFile, { globalDateThreshold: cfg.globalDateThreshold });
    const color = paint(ctx.stdout, ctx.env);

    if (flags['dry-run']) {
      const statements = schemaSql(model);
      if (flags.json) writeJson(ctx.stdout, { ok: true, dryRun: true, statements });
      else ctx.stdout.write(`${statements.map((s) => `${s.sql};\n`).join('\n')}\n${dryRunSummary(statements.length, model.loadOrder.length)}\n`);
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
      await requireUtf8Database(client, destination);
      const session = { ctx, client, model, destination, postgres, color, allow, json: flags.json === true, yes: flags.yes === true };
      return flags.check ? await check(session) : await update(session);
    } finally {
      await client.end().catch(() => undefined);
      await endpoints.close();
    }
  },
};

/**
 * Combinations where a flag would do nothing: --check and --dry-run apply nothing, so --yes (apply
 * without asking) has no effect there, nor has --allow on the offline CREATE statements of --dry-run
 * (with --check it does: the report says what etl schema would do with those changes allowed).
 */
function refuseIgnoredFlags(flags: { readonly check?: boolean; readonly 'dry-run'?: boolean; readonly yes?: boolean; readonly allow?: readonly string[] }): void {
  const pairs: [string, boolean | undefined][] = [
    ['--check and --dry-run', flags.check && flags['dry-run']],
    ['--dry-run and --allow', flags['dry-run'] && flags.allow !== undefined],
    ['--dry-run and --yes', flags['dry-run'] && flags.yes],
    ['--check and --yes', flags.check && flags.yes],
  ];
  const both = pairs.find(([, given]) => given === true);
  if (both) throw new UsageError('bad_arguments', `${both[0]} cannot be combined`, { hint: 'see etl schema --help' });
}

interface Session {
  readonly ctx: CommandContext;
  readonly client: pg.Client;
  readonly model: PipelineModel;
  readonly destination: string;
  /** The database's configuration (a second connection says whom a statement waits for). */
  readonly postgres: PostgresConfig;
  readonly color: Color;
  readonly allow: readonly string[];
  readonly json: boolean;
  readonly yes: boolean;
}

async function check(s: Session): Promise<number> {
  const { drift, plan, decision } = await inTransaction(s.client, async () => {
    const found = await checkDrift(s.client, s.model);
    const preview = await previewSchema(s.client, s.model, s.allow);
    return { drift: asPlanned(found, preview.plan, s.model), ...preview };
  });
  // Tables pipeline.yaml no longer has but etl loaded (schema/retired.ts) differ too.
  const retired = plan.changes.filter((c) => c.kind === 'retire_table').map((c) => c.table);
  const clean = drift.clean && retired.length === 0;
  if (s.json) writeJson(s.ctx.stdout, { ok: clean, destination: s.destination, ...drift, clean, retired, plan: planJson(plan, decision) });
  // --quiet keeps one line: what etl schema would do, not the last change of the list.
  else if (s.ctx.verbosity === 'quiet' && !clean) s.ctx.stdout.write(`${outcomeHeadline(decision)} (etl schema --check lists them)\n`);
  else if (drift.clean && !clean) s.ctx.stdout.write(`${s.color.yellow(`${retired.length} table(s) etl loaded are no longer in pipeline.yaml:`)} ${retired.join(', ')}\n${renderOutcome(plan, decision, s.color)}`);
  else s.ctx.stdout.write(`${renderDrift(drift, s.destination, s.color)}${clean ? '' : renderOutcome(plan, decision, s.color)}`);
  return clean ? 0 : 1;
}

async function update(s: Session): Promise<number> {
  const { plan, decision } = await inTransaction(s.client, () => previewSchema(s.client, s.model, s.allow));
  if (plan.problems.length > 0) throw dataProblems(plan.problems);
  const alterations = decision.apply.filter((c) => !CREATION.has(c.kind));
  if (alterations.length > 0 && !s.yes) {
    if (!s.json) s.ctx.stdout.write(renderPlan(s.destination, decision, s.color));
    const answer = await confirm(s.ctx, alterations.length);
    if (answer === 'no') {
      if (s.json) writeJson(s.ctx.stdout, { ok: false, destination: s.destination, declined: true, plan: planJson(plan, decision) });
      else s.ctx.stdout.write('nothing applied\n');
      return 1;
    }
  }
  const report = await applySchema(s.client, s.model, {
    alter: true,
    allow: s.allow,
    approved: decision.apply.flatMap((c) => c.sql),
    onWait: (message) => message !== null && s.ctx.stderr.write(`${message}\n`),
    signal: s.ctx.signal,
    watchFrom: s.postgres,
  });
  const blocked = [...report.refused.filter((c) => c.neededByLoad), ...report.blocked];
  if (s.json) {
    writeJson(s.ctx.stdout, { ok: blocked.length === 0, destination: s.destination, ...reportJson(report) });
  } else {
    // --quiet: the totals, and what load still needs when anything (the line LastLineOnly keeps).
    s.ctx.stdout.write(s.ctx.verbosity === 'quiet' ? `${reportTotals(s.destination, report)}\n${blockedLine(report, s.color, 'etl schema --check lists them')}` : renderReport(s.destination, report, s.color));
  }
  return blocked.length === 0 ? 0 : 1;
}

/** The last line of --dry-run's SQL (a comment: the output still runs in psql), the one --quiet keeps. */
function dryRunSummary(statements: number, pipelineTables: number): string {
  return `-- ${statements} CREATE TABLE statements: ${pipelineTables} table(s) of pipeline.yaml, ${statements - pipelineTables} of etl's state (--dry-run: nothing applied)`;
}

/** Asks on a terminal; without one, says what to do instead of waiting for an answer that cannot come. */
async function confirm(ctx: CommandContext, count: number): Promise<'yes' | 'no'> {
  if (process.stdin.isTTY !== true) {
    throw new UsageError('confirmation_needed', `${count} schema update(s) change existing tables and there is no terminal to confirm them: nothing was applied`, {
      hint: 'pass --yes to apply them (scripts, CI), or --check to only report them',
    });
  }
  const rl = createInterface({ input: process.stdin, output: ctx.stderr });
  try {
    const answer = await rl.question('Apply these schema updates? (yes/no) ', { signal: ctx.signal });
    return /^\s*y(es)?\s*$/i.test(answer) ? 'yes' : 'no';
  } finally {
    rl.close();
  }
}

function renderChange(c: SchemaChange, refused: boolean, color: Color): string[] {
  const out = [`  ${refused ? color.yellow('refused') : color.green('apply  ')}  ${c.table}: ${c.message}`];
  if (refused && c.risk) out.push(`           ${c.risk}`);
  for (const sql of c.sql) out.push(`           ${sql.replace(/\n/g, '\n           ')};`);
  if (refused && c.blocked) out.push(`           ${color.bold(`not applied yet: ${c.blocked}`)}`);
  else if (refused && c.allow) out.push(`           ${color.bold(`apply with: --allow ${[c.allow, ...(c.alongWith ?? [])].join(',')}`)}`);
  return out;
}

function renderRefused(all: readonly SchemaChange[], color: Color): string[] {
  const waiting = all.filter((c) => c.blocked && c.allow === null);
  const refused = all.filter((c) => !waiting.includes(c));
  const out: string[] = [];
  if (refused.length > 0) {
    out.push('', color.yellow(`${refused.length} change(s) not applied: they lose or may reject data (name each with --allow to apply it):`), ...refused.flatMap((c) => renderChange(c, true, color)));
  }
  if (waiting.length > 0) out.push('', color.yellow(`${waiting.length} change(s) wait for a run:`), ...waiting.flatMap((c) => renderChange(c, true, color)));
  return out;
}

function renderPlan(destination: string, decision: Decision, color: Color): string {
  const out = [`${destination}: ${decision.apply.length} schema update(s) to apply:`, ...decision.apply.flatMap((c) => renderChange(c, false, color))];
  out.push(...renderRefused(decision.refused, color), '');
  return `${out.join('\n')}\n`;
}

function renderReport(destination: string, r: SchemaReport, color: Color): string {
  const out = [reportTotals(destination, r)];
  for (const t of r.created) out.push(`  ${color.green('created')}  ${t}`);
  for (const t of r.existing) out.push(`  ${color.dim('exists ')}  ${t}`);
  for (const c of r.applied.filter((x) => !CREATION.has(x.kind))) out.push(`  ${color.green('applied')}  ${c.table}: ${c.message}`);
  for (const [table, n] of Object.entries(r.deletedRows)) out.push(`  ${color.yellow('deleted')}  ${table}: ${n} row(s) the new definition cannot hold`);
  out.push(...renderRefused(r.refused, color));
  for (const token of r.unusedAllows) out.push(color.dim(`--allow ${token}: no such change (already applied?)`));
  const blocked = blockedLine(r, color, 'see above');
  if (blocked !== '') out.push('', blocked.trimEnd());
  return `${out.join('\n')}\n`;
}

function reportTotals(destination: string, r: SchemaReport): string {
  const altered = r.applied.filter((c) => !CREATION.has(c.kind));
  return `${destination}: ${r.created.length} table(s) created, ${r.existing.length} already there; ${altered.length} change(s) applied to existing tables`;
}

/** The columns load needs that a refused change would give, as a line (empty when none). */
function blockedLine(r: SchemaReport, color: Color, where: string): string {
  // A column two refused changes could give (its rename, or adding it) is named once.
  const blocked = [...new Set(r.refused.filter((c) => c.neededByLoad).map((c) => (c.column === null ? `the primary key of "${c.table}"` : `"${c.table}"."${c.column}"`)))];
  return blocked.length > 0 ? `${color.yellow(`load needs ${blocked.join(', ')}: decide with --allow (${where})`)}\n` : '';
}

const outcomeHeadline = (d: Decision): string => `etl schema would apply ${d.apply.length} change(s) and refuse ${d.refused.length}`;

function renderOutcome(plan: SchemaPlan, d: Decision, color: Color): string {
  const out = [`${outcomeHeadline(d)}:`];
  // A change applied because --allow names it says what it loses, as its refusal would.
  for (const c of d.apply) out.push(`  ${color.green('apply  ')}  ${c.table}: ${c.message}${c.allow !== null && c.risk ? `: ${c.risk}` : ''}`);
  for (const c of d.refused) out.push(`  ${color.yellow('refused')}  ${c.table}: ${c.risk ?? c.message}  (${whatToDo(c, d)})`);
  for (const p of plan.problems) {
    out.push(`  ${color.red('blocked')}  ${p.table}: ${p.message}`);
    for (const e of p.examples) out.push(`           e.g. ${e}`);
  }
  return `${out.join('\n')}\n`;
}

/**
 * What makes a refused change apply: its --allow, or, when it waits for a run (one that needs no
 * --allow, or whose --allow is given), what to run first.
 */
function whatToDo(c: SchemaChange, d: Decision): string {
  if (c.blocked && (c.allow === null || d.blocked.includes(c))) return c.blocked;
  return `--allow ${c.allow}`;
}

/**
 * The DDL --check shows is the statements etl schema runs. For a missing column: a NOT NULL column is
 * added nullable to a table with rows (they have no value yet) and made NOT NULL by etl schema once
 * a run has filled it (the finding's own `ADD COLUMN … NOT NULL` would fail on those rows). For a
 * type or NOT NULL the rows cannot meet: the DELETE of those rows, then the ALTER.
 */
function asPlanned(drift: DriftReport, plan: SchemaPlan, model: PipelineModel): DriftReport {
  const findings = drift.findings.map((f) => {
    // A type or NOT NULL its rows cannot meet: the DELETE of those rows comes first.
    const lossy = f.kind === 'type' || f.kind === 'nullability' ? plan.changes.find((c) => (c.kind === 'change_type' || c.kind === 'nullability') && c.table === f.table && c.column === f.column && c.deletesRows > 0) : undefined;
    if (lossy) return { ...f, fix: [...lossy.sql] };
    const add = f.kind === 'missing_column' ? plan.changes.find((c) => c.kind === 'add_column' && c.table === f.table && c.column === f.column) : undefined;
    const table = model.tables.get(f.table);
    const column = table?.columns.find((c) => c.name === f.column);
    if (!add || !table || !column || column.nullable || add.sql.join('\n') === f.fix.join('\n')) return f;
    return { ...f, fix: [...add.sql, `-- once a run has filled it: ${setNullabilitySql(table, column)}`] };
  });
  return { ...drift, findings };
}

function renderDrift(drift: DriftReport, destination: string, color: Color): string {
  if (drift.clean) return `${color.green('no difference:')} ${destination} matches pipeline.yaml (${drift.tablesChecked} tables checked)\n`;
  const out = [`${color.yellow(`${drift.findings.length} difference(s)`)} between ${destination} and pipeline.yaml:`, ''];
  for (const f of drift.findings) {
    out.push(`${f.table}: ${f.message}`);
    for (const sql of f.fix) out.push(sql.startsWith('--') ? `  ${color.dim(sql)}` : `  ${sql.replace(/\n/g, '\n  ')};`);
    out.push('');
  }
  return `${out.join('\n')}`;
}

const changeJson = (c: SchemaChange) => ({
  kind: c.kind,
  table: c.table,
  column: c.column,
  message: c.message,
  sql: c.sql,
  allow: c.allow,
  risk: c.risk,
  deletesRows: c.deletesRows,
  ...(c.blocked ? { blocked: c.blocked } : {}),
});

function planJson(plan: SchemaPlan, d: Decision) {
  return { apply: d.apply.map(changeJson), refused: d.refused.map(changeJson), problems: plan.problems, unusedAllows: d.unused };
}

function reportJson(r: SchemaReport) {
  return {
    created: r.created,
    existing: r.existing,
    statements: r.statements,
    applied: r.applied.map(changeJson),
    refused: r.refused.map(changeJson),
    deletedRows: r.deletedRows,
    unusedAllows: r.unusedAllows,
  };
}

export default command;
