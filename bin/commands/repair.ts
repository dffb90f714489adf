// `etl repair`: what `etl diff --deep` finds is fixed by re-reading exactly the documents behind the
// differing rows and loading them through the normal stages, as a staged run of its own:
//   diff --deep (listing every differing row's documents, inspect/repair-scope.ts)
//   → extract by `_id` (extract/requested-read.ts) → transform → load → diff again (the check).
// Nothing differs: nothing is staged. The run moves no watermark and is never complete.
import type { Command, CommandContext } from '../command.ts';
import { parseFlags } from '../flags.ts';
import { count, duration } from '../progress/meter.ts';
import { parseTables, runStageFlow, STAGE_FLAGS, writeWarnings } from '../stage-flow.ts';
import { diffStage, differenceText, differingRows } from '../stages/diff.ts';
import { extractJson, extractStage } from '../stages/extract.ts';
import { LOAD_FLAGS, checkLockFlags, loadJson, loadNotes, loadOptions, loadStage } from '../stages/load.ts';
import { transformJson, transformStage } from '../stages/transform.ts';
import { paint } from '../output.ts';
import type { DiffReport, TableDiff } from '../../inspect/diff.ts';
import { selectTables } from '../../model/select-tables.ts';
import type { PipelineModel } from '../../model/types.ts';
import { RepairScopes, repairRequest, type RepairRequestOf, type TableRepairScope } from '../../inspect/repair-scope.ts';
import { formatTable } from '../../report/text-table.ts';
import type { ExtractReport } from '../../extract/index.ts';
import type { LoadReport } from '../../load/index.ts';
import type { TransformReport } from '../../transform/index.ts';
import { removeAbandonedPartials } from '../../staging/run-writer.ts';

const usage = `usage: etl repair [--tables a,b] [--dry-run] [--no-wait | --lock-timeout D] [--json]
                  [--mongo-url URL] [--mongo-db NAME] [--database-url URL] [--staging DIR]
                  [--pipeline FILE]

Makes PostgreSQL equal to MongoDB again where \`etl diff --deep\` finds them apart, without a full
reload: compares every table (as etl diff --deep does), traces every missing, extra or different
row back to the MongoDB documents that own it, reads exactly those documents again (by _id, from
the live server) into a new staged run, transforms it and loads it as any run; then compares the
repaired tables again. A document asked for and no longer in MongoDB has its rows removed; a key
of a dedupe table (users_logbook, menu_recipes) is recomputed from every document of it.

The repair run is staged like any other (extract/<collection>.requested.ndjson lists the _ids asked
for and found), so etl runs, report, pack and verify work on it. It moves no watermark and is never
a complete read. Rows refused for a missing reference and rows rejected by the type contract are
not differences (see etl diff --help): they stay as a full run would leave them.
When nothing differs, nothing is staged.

options:
  --tables a,b        compare and repair only these tables
  --dry-run           stage the repair run and load it in a transaction that is rolled back
  --no-wait           fail at once when another etl load is running (default: wait for it)
  --lock-timeout D    wait at most D (30s, 2m, 1h; a bare number is seconds) for another
                      etl load, then fail naming it
  --mongo-url URL     MongoDB (default: MONGODB_URL)
  --mongo-db NAME     MongoDB database (default: MONGODB_DATABASE, else the URL's path)
  --database-url URL  PostgreSQL (default: DATABASE_URL, else POSTGRES_*)
  --staging DIR       staging folder (default: ETL_STAGING, else ./.etl/runs)
  --pipeline FILE     pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --json              print {before, repair, extract, transform, load, after} as JSON on stdout
exit codes: 0 repaired (or nothing to repair), 1 a stage failed or rows still differ after the
repair, 2 usage or configuration error
`;

interface RepairReport {
  readonly before: DiffReport;
  readonly scopes: readonly TableRepairScope[];
  readonly request: RepairRequestOf | null;
  readonly extract: ExtractReport | null;
  readonly transform: TransformReport | null;
  readonly load: LoadReport | null;
  /** The repaired tables compared again (null: nothing was repaired, or a dry run). */
  readonly after: DiffReport | null;
}

const command: Command = {
  summary: 'fix what etl diff --deep finds by re-reading exactly those documents, as a staged run',
  usage,
  async run(ctx) {
    const flags = parseFlags(ctx.argv, {
      // Not --allow-delete-all: a repair run stages no _id set, so nothing it loads could empty a table.
      'dry-run': LOAD_FLAGS['dry-run'],
      'no-wait': LOAD_FLAGS['no-wait'],
      'lock-timeout': LOAD_FLAGS['lock-timeout'],
      'database-url': LOAD_FLAGS['database-url'],
      ...STAGE_FLAGS,
      'mongo-url': { type: 'string' },
      'mongo-db': { type: 'string' },
    });
    checkLockFlags(flags);
    const wanted = parseTables(flags.tables);
    return runStageFlow<RepairReport>(ctx, {
      json: flags.json === true,
      multiStage: true,
      config: { pipeline: flags.pipeline, staging: flags.staging, databaseUrl: flags['database-url'], mongoUrl: flags['mongo-url'], mongoDatabase: flags['mongo-db'] },
      servers: () => ({ needMongo: true, needPostgres: true }),
      async work(env) {
        const { config, model, endpoints, view } = env;
        const tables = selectTables(model, wanted);
        const compare = { model, mongo: endpoints.mongo, postgres: endpoints.postgres, secrets: config.secrets, deep: true, describe: endpoints.describe, signal: ctx.signal };
        const collector = new RepairScopes();
        const before = await diffStage(view, 'diff', { ...compare, tables, repairScopes: collector });
        const scopes = collector.scopes;
        const request = scopes.length > 0 ? repairRequest(scopes) : null;
        if (!request) return { before, scopes, request, extract: null, transform: null, load: null, after: null };
        // One sweep of the staging folder for killed runs' leftovers, for the three stages.
        const common = { model, stagingDir: config.stagingDir, signal: ctx.signal, abandoned: await removeAbandonedPartials(config.stagingDir) };
        const extract = await extractStage(view, { ...common, source: { kind: 'mongodb', mongo: endpoints.mongo, secrets: config.secrets }, secrets: config.secrets, tables: wanted, repair: request });
        const staged = stagedTables(model, wanted, extract);
        const transform = await transformStage(view, { ...common, runId: extract.runId, tables: staged ?? null });
        const dryRun = flags['dry-run'] === true;
        const load = await loadStage(view, { ...loadOptions(flags, env, { runId: extract.runId, tables: staged, postgres: endpoints.postgres }), abandoned: common.abandoned });
        // The tables that differed, and those whose refused rows load once a row of another comes back.
        const repaired = before.tables.filter((t) => !t.identical || scopes.some((s) => s.table === t.table)).map((t) => t.table);
        const after = dryRun ? null : await diffStage(view, 'check', { ...compare, tables: repaired });
        return { before, scopes, request, extract, transform, load, after };
      },
      toJson: (r) => repairJson(r),
      render: (r) => renderRepair(ctx, r),
      finalLine: repairLine,
      exitCode: (r) => (stillDiffers(r) ? 1 : 0),
    });
  },
};

/**
 * The tables transform and load take of a repair run: every table of the collections it read (undefined),
 * or with --tables those of them whose collection it read. A table asked for with nothing to repair
 * has no extract (its collection was not read): transform would refuse it as not extracted.
 */
function stagedTables(model: PipelineModel, wanted: readonly string[] | undefined, extract: ExtractReport): string[] | undefined {
  if (!wanted) return undefined;
  const read = new Set(extract.collections.map((c) => c.collection));
  return selectTables(model, wanted).filter((t) => read.has(model.tables.get(t)!.collection));
}

/** The tables the repair took up: those that differed, and those with rows that load once another table's row is back. */
function repairedTables(r: RepairReport): TableDiff[] {
  const scoped = new Set(r.scopes.map((s) => s.table));
  return r.before.tables.filter((t) => !t.identical || scoped.has(t.table));
}

/** Differences remain: the check found some, or a table could not be compared (nor repaired). */
function stillDiffers(r: RepairReport): boolean {
  if (r.before.tables.some((t) => t.problem !== null)) return true;
  return r.after !== null && !r.after.identical;
}

function repairJson(r: RepairReport) {
  const documents = new Map(r.scopes.map((s) => [s.table, s]));
  return {
    ok: !stillDiffers(r),
    nothing_to_repair: r.request === null,
    run_id: r.extract?.runId ?? null,
    dry_run: r.load?.dryRun ?? false,
    repair: repairedTables(r).map((t) => ({ table: t.table, collection: t.collection, missing: t.missing.count, extra: t.extra.count, different: t.different?.count ?? 0, documents: documents.get(t.table)?.documents.length ?? 0, recomputed_keys: documents.get(t.table)?.recompute.length ?? 0, problem: t.problem })),
    documents: r.request?.documents ?? 0,
    before: r.before,
    extract: r.extract ? extractJson(r.extract) : null,
    transform: r.transform ? transformJson(r.transform) : null,
    load: r.load ? loadJson(r.load) : null,
    after: r.after,
  };
}

/** One line per table that differed: what differed, the documents re-read, what the load did, what is left. */
function renderRepair(ctx: CommandContext, r: RepairReport): void {
  const differing = repairedTables(r);
  if (differing.length === 0) return;
  const loaded = new Map((r.load?.tables ?? []).map((t) => [t.table, t]));
  const scopes = new Map(r.scopes.map((s) => [s.table, s]));
  const after = new Map((r.after?.tables ?? []).map((t) => [t.table, t]));
  const rows = differing.map((t) => {
    const l = loaded.get(t.table);
    const a = after.get(t.table);
    return [t.table, t.missing.count, t.extra.count, t.different?.count ?? 0, scopes.get(t.table)?.documents.length ?? 0, l ? l.inserted : '-', l ? l.updated : '-', l ? l.deleted : '-', a ? (a.identical ? 'OK' : 'DIFF') : '-'];
  });
  ctx.stdout.write(formatTable(['table', 'missing', 'extra', 'different', 'documents', 'inserted', 'updated', 'deleted', 'after'], rows));
  if (r.extract) writeWarnings(ctx, r.extract.warnings);
  if (r.load) loadNotes(ctx, r.load);
  const color = paint(ctx.stderr, ctx.env);
  for (const t of r.before.tables.filter((x) => x.problem)) ctx.stderr.write(`${color.yellow('not repaired:')} ${t.table}: ${t.problem!.message}\n`);
  for (const t of (r.after?.tables ?? []).filter((x) => !x.identical)) {
    ctx.stderr.write(`${color.yellow('still differs:')} ${t.table}: ${differenceText(t)} (a document may have changed during the repair: run etl diff --deep --tables ${t.table})\n`);
  }
}

/** `repair: 9 differing rows in 6 table(s) → 7 documents read again (1 gone) → run X: …; check: identical, in 4.1 s (…)` */
function repairLine(r: RepairReport, ms: number): string {
  if (!r.request) {
    if (r.before.identical) return `repair: nothing to repair, ${r.before.totals.tables} table(s) identical to MongoDB (diff --deep); no run staged, in ${duration(ms)}`;
    return `repair: nothing that can be repaired: ${r.before.totals.differing} table(s) cannot be compared (see above); no run staged, in ${duration(ms)}`;
  }
  const found = r.extract!.collections.reduce((a, c) => a + (c.requested?.found ?? 0), 0);
  const keys = [...r.request.recompute.values()].reduce((a, k) => a + k.length, 0);
  const sum = (k: 'inserted' | 'updated' | 'deleted') => count(r.load!.tables.reduce((a, t) => a + t[k], 0));
  const applied = r.load!.dryRun ? 'rolled back (dry run)' : `loaded into ${r.load!.destination}`;
  const check = r.after === null ? 'no check (dry run)' : r.after.identical ? 'check: identical' : `check: ${r.after.totals.differing} table(s) still differ`;
  const span = (a: string, b: string) => duration(Date.parse(b) - Date.parse(a));
  const stages = [
    `diff ${span(r.before.startedAt, r.before.endedAt)}`,
    `extract ${span(r.extract!.startedAt, r.extract!.endedAt)}`,
    `transform ${span(r.transform!.startedAt, r.transform!.endedAt)}`,
    `load ${span(r.load!.startedAt, r.load!.endedAt)}`,
    ...(r.after ? [`check ${span(r.after.startedAt, r.after.endedAt)}`] : []),
  ];
  return (
    `repair: ${count(differingRows(r.before))} differing rows in ${r.before.totals.differing} table(s) → ${count(r.request.documents)} documents read again (${count(r.request.documents - found)} gone)` +
    `${keys ? `, ${count(keys)} dedupe key(s) recomputed` : ''} → run ${r.extract!.runId}: ${sum('inserted')} inserted, ${sum('updated')} updated, ${sum('deleted')} deleted, ${applied}; ${check}, ` +
    `in ${duration(ms)} (${stages.join(', ')})`
  );
}

export default command;
