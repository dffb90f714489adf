// `etl extract`: reads the collections the pipeline needs from MongoDB (or a mongodump output) into
// a new staged run. Progress on stderr, the per-collection summary and a totals line on stdout.
import type { Command } from '../command.ts';
import { parseFlags } from '../flags.ts';
import { parseTables, runStageFlow, STAGE_FLAGS } from '../stage-flow.ts';
import { EXTRACT_FLAGS, extractLine, extractOptions, extractStage, readExtractFlags, extractJson, renderExtract } from '../stages/extract.ts';

const usage = `usage: etl extract [--tables a,b] [--staging DIR] [--pipeline FILE] [--full] [--since DATE]
                   [--propagate-deletes] [--source URL|PATH] [--mongo-db NAME] [--json]

Reads every collection the pipeline needs, once each, into a new staged run
(<staging>/<run>/extract/<collection>.ndjson) and points <staging>/latest at it.
Incremental by default: documents created or updated at or after each table's watermark
(stored in PostgreSQL by the previous load, minus a safety margin); tables never loaded are read
in full.

options:
  --tables a,b      only the collections feeding these tables
  --full            read everything (ignore watermarks and date thresholds; PostgreSQL not needed)
  --since DATE      read documents created or updated at or after DATE (2024-03-01, an ISO instant);
                    after a table's watermark, the watermark stays: the next run reads what was
                    skipped
  --propagate-deletes
                    also stage each collection's full _id set (<collection>.ids.ndjson, a second
                    pass, ids only), so load deletes the rows whose document is gone, and the rows
                    referencing them; every table whose rows name their document (a dedupe
                    table through what each document contributed, its keys recomputed; without
                    the flag: the tables with propagate_deletes: true)
  --source URL|PATH a mongodb:// or mongodb+srv:// URL (live server), or a mongodump output:
                    a dump folder, a database folder of .bson/.bson.gz files, or an --archive file
  --mongo-db NAME   the database to read (default: MONGODB_DATABASE, else the URL's path; from a
                    dump: the one it holds, to be named when it holds several)
  --staging DIR     staging folder (default: ETL_STAGING, else ./.etl/runs)
  --pipeline FILE   pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --json            print the report as JSON on stdout (progress off)
exit codes: 0 done, 1 failed, 2 usage or configuration error
`;

const command: Command = {
  summary: 'read MongoDB (or a mongodump) into a new staged run',
  usage,
  async run(ctx) {
    const flags = parseFlags(ctx.argv, { ...STAGE_FLAGS, ...EXTRACT_FLAGS });
    const { live } = readExtractFlags(flags);
    const tables = parseTables(flags.tables);
    return runStageFlow(ctx, {
      json: flags.json === true,
      config: { pipeline: flags.pipeline, staging: flags.staging, mongoUrl: live ? flags.source : undefined, mongoUrlFlag: '--source', mongoDatabase: flags['mongo-db'] },
      // The watermarks are in PostgreSQL (not needed for --full); an explicit --source is used as given.
      servers: () => ({ needMongo: live && flags.source === undefined, needPostgres: flags.full !== true }),
      work: (env) => extractStage(env.view, extractOptions(flags, env, tables, env.endpoints.postgres)),
      toJson: extractJson,
      render: (r) => renderExtract(ctx, r),
      finalLine: (r, ms) => extractLine(r, `run in ${r.runDir}`, ms),
    });
  },
};

export default command;
