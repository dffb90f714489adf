// `etl transform`: turns a staged run's extract files into one CSV per table (+ keys and rejects
// files) and records the figures in the run's manifest. Needs no server. Progress per table on
// stderr (listr2); a summary table, or --json, on stdout.
import type { Command, CommandContext } from '../command.ts';
import { parseFlags } from '../flags.ts';
import { paint, writeJson } from '../output.ts';
import { formatTable } from '../../report/text-table.ts';
import { StageProgress, stageListr } from '../stage-progress.ts';
import { resolveConfig } from '../../connect/config.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { UsageError } from '../../model/errors.ts';
import { runTransform, type TransformProgress, type TransformReport } from '../../transform/index.ts';

const usage = `usage: etl transform [--run ID] [--staging DIR] [--pipeline FILE] [--tables a,b]
                     [--allow-pipeline-change] [--json]

Reads a staged run's extract files (each collection once, for every table it feeds) and writes, per
table, transform/<table>.csv, transform/<table>.rejects.ndjson (rows that could not be mapped, with
the reason) and, for link tables merged by delete-and-insert, transform/<table>.keys.csv (every
parent whose links are replaced). The counts reconcile in the run's manifest:
documents = rows + rejected + skipped, per table.

options:
  --run ID                  the run to transform (default: the one <staging>/latest names)
  --staging DIR             the staging folder (default: ETL_STAGING, else ./staging)
  --pipeline FILE           the pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --tables a,b              only these tables (default: every table whose collection the run holds)
  --allow-pipeline-change   transform even if pipeline.yaml changed since the run was extracted
                            (both sha256 are recorded in the manifest)
  --json                    print the report as JSON on stdout (progress off)
exit codes: 0 done, 1 failed (run not extracted, damaged or changed pipeline…), 2 usage or configuration error
`;

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function skippedText(skipped: Readonly<Record<string, number>>): string {
  const parts = Object.entries(skipped).map(([reason, n]) => `${reason} ${count(n)}`);
  return parts.length > 0 ? parts.join(', ') : '0';
}

/** One listr2 task per table, driven by the stage's progress events. */
function progressTasks(ctx: CommandContext, json: boolean, run: (onProgress: (e: TransformProgress) => void) => Promise<TransformReport>) {
  let tables: readonly string[] = [];
  let runId = '';
  let started!: () => void;
  const runStarted = new Promise<void>((resolve) => (started = resolve));
  const lastShown = new Map<string, number>();
  const onProgress = (e: TransformProgress) => {
    switch (e.kind) {
      case 'started':
        tables = e.tables;
        runId = e.runId;
        started();
        return;
      case 'collection_started':
        for (const t of e.tables) progress.update(t, { output: `reading ${e.collection} (${count(e.total)} documents)` });
        return;
      case 'documents': {
        // A line a second at most: the simple renderer (CI logs) prints every change.
        const now = Date.now();
        if (now - (lastShown.get(e.collection) ?? 0) < 1000) return;
        lastShown.set(e.collection, now);
        for (const t of e.tables) progress.update(t, { output: `${e.collection}: ${count(e.done)} of ${count(e.total)} documents` });
        return;
      }
      case 'table_done':
        progress.update(e.table, {
          title: `${e.table}: ${count(e.record.rows)} rows, ${count(e.record.rejected)} rejected, skipped ${skippedText(e.record.skipped)}`,
          done: true,
        });
        return;
      case 'table_failed':
        progress.update(e.table, { failed: true });
        return;
    }
  };
  const progress = new StageProgress(run(onProgress));
  const list = stageListr(ctx, json, [
    {
      title: 'Checking the staged run',
      task: async (_c, task) => {
        await Promise.race([runStarted, progress.failed()]);
        task.title = `Transforming run ${runId}: ${tables.length} table(s)`;
        // Tables of one collection progress together: show them side by side.
        return task.newListr(progress.subtasks(tables), { concurrent: true, exitOnError: true });
      },
    },
  ]);
  return { list, stage: progress.stage };
}

const command: Command = {
  summary: 'turn a staged run\'s documents into one CSV per table (+ keys and rejects)',
  usage,
  async run(ctx) {
    const values = parseFlags(ctx.argv, {
      run: { type: 'string' },
      staging: { type: 'string' },
      pipeline: { type: 'string' },
      tables: { type: 'string' },
      'allow-pipeline-change': { type: 'boolean' },
      json: { type: 'boolean' },
    });
    const json = values.json === true;
    const tables = values.tables !== undefined ? values.tables.split(',').map((t) => t.trim()).filter(Boolean) : undefined;
    if (tables !== undefined && tables.length === 0) throw new UsageError('bad_arguments', '--tables needs at least one table name');
    const config = resolveConfig({ flags: { pipeline: values.pipeline, staging: values.staging }, env: ctx.env, cwd: ctx.cwd });
    const model = await loadPipeline(config.pipelineFile, { globalDateThreshold: config.globalDateThreshold });

    const { list, stage } = progressTasks(ctx, json, (onProgress) =>
      runTransform({
        model,
        stagingDir: config.stagingDir,
        runId: values.run ?? null,
        tables: tables ?? null,
        allowPipelineChange: values['allow-pipeline-change'] === true,
        signal: ctx.signal,
        onProgress,
      }),
    );
    await list.run().catch(() => undefined);
    const report = await stage; // throws the stage's error, rendered by bin/render-error.ts

    if (json) {
      writeJson(ctx.stdout, { ok: true, ...report });
      return 0;
    }
    const color = paint(ctx.stdout, ctx.env);
    if (report.pipelineChanged) {
      ctx.stderr.write(
        `warning: pipeline.yaml changed since run ${report.runId} was extracted (extract: ${report.extractPipelineSha256}, now: ${report.pipelineSha256}); transformed with the current one as asked\n`,
      );
    }
    const rows = report.tables.map((t) => [t.table, t.documents, t.rows, t.rejected, skippedText(t.skipped)]);
    ctx.stdout.write(formatTable(['table', 'documents', 'rows', 'rejected', 'skipped'], rows));
    const rejected = report.tables.reduce((a, t) => a + t.rejected, 0);
    const rowsTotal = report.tables.reduce((a, t) => a + t.rows, 0);
    if (report.notExtracted.length > 0) ctx.stdout.write(`not in this run (collection not extracted): ${report.notExtracted.join(', ')}\n`);
    const live = report.tables.filter((t) => t.live);
    if (live.length > 0) {
      ctx.stdout.write(`live keys for delete propagation: ${live.map((t) => `${t.table} ${count(t.live!.records)}`).join(', ')} (transform/<table>.live.csv)\n`);
    }
    ctx.stdout.write(
      `${count(report.documentsRead)} documents read, ${count(rowsTotal)} rows staged, ` +
        `${rejected > 0 ? color.yellow(`${count(rejected)} rejected`) : '0 rejected'} ` +
        `(see transform/<table>.rejects.ndjson) in ${(report.durationMs / 1000).toFixed(2)} s; run ${report.runDir}\n`,
    );
    return 0;
  },
};

export default command;
