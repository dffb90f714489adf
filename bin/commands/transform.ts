// `etl transform`: turns a staged run's extract files into one CSV per table (+ keys and rejects
// files) and records the figures in the run's manifest. Needs no server. Progress on stderr, the
// per-table summary and a totals line on stdout.
import type { Command } from '../command.ts';
import { parseFlags } from '../flags.ts';
import { parseTables, runStageFlow, STAGE_FLAGS } from '../stage-flow.ts';
import { renderTransform, transformJson, transformLine, transformStage } from '../stages/transform.ts';

const usage = `usage: etl transform [--run ID] [--staging DIR] [--pipeline FILE] [--tables a,b]
                     [--allow-pipeline-change] [--json]

Reads a staged run's extract files (each collection once, for every table it feeds) and writes, per
table, transform/<table>.csv, transform/<table>.rejects.ndjson (rows that could not be mapped, with
the reason) and, for link tables merged by delete-and-insert, transform/<table>.keys.csv (every
parent whose links are replaced). The counts reconcile in the run's manifest:
documents = rows + rejected + skipped, per table.

options:
  --run ID                  the run to transform (default, or latest: the one <staging>/latest
                            names)
  --staging DIR             the staging folder (default: ETL_STAGING, else ./.etl/runs)
  --pipeline FILE           the pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --tables a,b              only these tables (default: every table whose collection the run holds);
                            on a run transformed before with this pipeline.yaml, the other tables'
                            files stay and etl load loads them too
  --allow-pipeline-change   transform even if pipeline.yaml changed since the run was extracted
                            (both sha256 are recorded in the manifest); never a run a load
                            committed tables of, transformed with another one: its files are
                            what PostgreSQL's rows came from
  --json                    print the report as JSON on stdout (progress off)
exit codes: 0 done, 1 failed (run not extracted, damaged or changed pipeline…), 2 usage or
configuration error
`;

const command: Command = {
  summary: 'turn a staged run\'s documents into one CSV per table (+ keys and rejects)',
  usage,
  async run(ctx) {
    const flags = parseFlags(ctx.argv, { ...STAGE_FLAGS, run: { type: 'string' }, 'allow-pipeline-change': { type: 'boolean' } });
    const tables = parseTables(flags.tables);
    return runStageFlow(ctx, {
      json: flags.json === true,
      config: { pipeline: flags.pipeline, staging: flags.staging },
      servers: () => ({ needMongo: false, needPostgres: false }),
      work: ({ config, model, view }) =>
        transformStage(view, {
          model,
          stagingDir: config.stagingDir,
          runId: flags.run ?? null,
          tables: tables ?? null,
          allowPipelineChange: flags['allow-pipeline-change'] === true,
          signal: ctx.signal,
        }),
      toJson: transformJson,
      render: (r) => renderTransform(ctx, r),
      finalLine: (r, ms) => transformLine(r, `run in ${r.runDir}`, ms),
    });
  },
};

export default command;
