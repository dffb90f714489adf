// `etl load`: merges a staged run into PostgreSQL in one transaction. Progress on stderr, the
// per-table summary and a totals line on stdout.
import type { Command } from '../command.ts';
import { parseFlags } from '../flags.ts';
import { parseTables, runStageFlow, STAGE_FLAGS } from '../stage-flow.ts';
import { LOAD_FLAGS, checkLockFlags, loadFinalLine, loadOptions, loadStage, loadJson, renderLoad } from '../stages/load.ts';

const usage = `usage: etl load [--run ID] [--staging DIR] [--pipeline FILE] [--tables a,b] [--dry-run]
                [--no-wait | --lock-timeout D] [--allow-delete-all] [--database-url URL] [--json]

Merges a staged run into PostgreSQL, in one transaction: each table's CSV is copied into a
temporary table, then merged (upsert, delete-and-insert of link tables, dedupe upsert) in load
order; rows referencing a missing row are rejected or set NULL as pipeline.yaml says, and listed in
<run>/load/<table>.rejects.ndjson; the watermarks advance in the same transaction. It all commits or
nothing changes. A run already loaded changes nothing. Missing tables are created first.
A run older than one already loaded into a table is refused (exit 1, nothing changed): its rows
predate what that run loaded, and no later run would read them again.
A run extracted with --propagate-deletes also deletes the rows whose document is gone (and the rows
referencing them, or sets those references NULL, as pipeline.yaml says).

options:
  --run ID            the staged run (default, or latest: the one <staging>/latest names)
  --tables a,b        only these tables (in load order)
  --dry-run           do all the work and report the figures, then roll back
  --no-wait           fail at once when another etl load is running (default: wait for it)
  --lock-timeout D    wait at most D (30s, 2m, 1h; a bare number is seconds) for another
                      etl load, then fail naming it
  --allow-delete-all  delete propagation: accept an empty _id set for a table holding rows
                      (by default refused: it more likely means a wrong source than an empty one)
  --database-url URL  the PostgreSQL database (default: DATABASE_URL, else POSTGRES_*)
  --staging DIR       staging folder (default: ETL_STAGING, else ./.etl/runs)
  --pipeline FILE     pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --json              print the report as JSON on stdout (progress off)
exit codes: 0 done, 1 failed (nothing changed), 2 usage or configuration error
`;

const command: Command = {
  summary: 'merge a staged run into PostgreSQL in one transaction',
  usage,
  async run(ctx) {
    const flags = parseFlags(ctx.argv, { ...STAGE_FLAGS, ...LOAD_FLAGS, run: { type: 'string' } });
    checkLockFlags(flags);
    const tables = parseTables(flags.tables);
    // TRANSFER_DESTINATION=remote: PostgreSQL through an SSH tunnel (an explicit --database-url is used as given).
    const tunnel = flags['database-url'] === undefined;
    return runStageFlow(ctx, {
      json: flags.json === true,
      config: { pipeline: flags.pipeline, staging: flags.staging, databaseUrl: flags['database-url'] },
      servers: () => ({ needMongo: false, needPostgres: tunnel }),
      work: (env) => loadStage(env.view, loadOptions(flags, env, { runId: flags.run ?? null, tables, postgres: tunnel ? env.endpoints.postgres : env.config.postgres })),
      toJson: loadJson,
      render: (r) => renderLoad(ctx, r),
      finalLine: (r, ms) => loadFinalLine(r, ms),
    });
  },
};

export default command;
