// `etl validate`: checks pipeline.yaml and prints the tables in load order, or every finding with
// its line (exit 2). Needs no server.
import type { Command, CommandContext } from '../command.ts';
import { paint, writeJson } from '../output.ts';
import { formatTable } from '../../report/text-table.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import type { PipelineModel, TableModel } from '../../model/types.ts';
import { parseFlags } from '../flags.ts';
import { commandConfig } from '../config.ts';

const usage = `usage: etl validate [--pipeline FILE] [--json]

Checks pipeline.yaml (every error names its line and key) and prints the tables in load order:
each table after the tables it references, ties broken by export_order then file order.

options:
  --pipeline FILE   the pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --json            print the resolved model as JSON on stdout
exit codes: 0 valid, 2 invalid (or bad options)
`;


/** `upsert on (id)`, `explode, delete_and_insert by user_id`, `dedupe on (user_id, day)`. */
export function describeStrategy(t: TableModel): string {
  switch (t.strategy) {
    case 'upsert':
      return `upsert on (${t.mergeKey.join(', ')})`;
    case 'explode':
      return t.explode!.merge === 'delete_and_insert'
        ? `explode, delete_and_insert by ${t.explode!.parentColumn}`
        : `explode, upsert on (${t.mergeKey.join(', ')})`;
    case 'dedupe':
      return `dedupe on (${t.mergeKey.join(', ')}), latest by ${t.dedupe!.latestBy}`;
  }
}

export function describeSource(t: TableModel): string {
  const arrays = t.explode ? `.{${t.explode.arrays.map((a) => a.field).join(', ')}}` : '';
  return `${t.collection}${arrays}${t.filter ? ` where ${JSON.stringify(t.filter.mongoQuery)}` : ''}`;
}

/** The model as plain JSON (Map → object, Dates → ISO text). */
export function modelJson(model: PipelineModel) {
  return {
    file: model.file,
    sha256: model.sha256,
    settings: model.settings,
    loadOrder: model.loadOrder,
    tables: model.loadOrder.map((name) => {
      const t = model.tables.get(name)!;
      return {
        name: t.name,
        exportOrder: t.exportOrder,
        collection: t.collection,
        filter: t.filter?.mongoQuery ?? null,
        strategy: t.strategy,
        merge: t.explode?.merge ?? null,
        mergeKey: t.mergeKey,
        primaryKey: t.primaryKey,
        uniqueConstraints: t.uniqueConstraints,
        columns: t.columns.map((c) => ({
          name: c.name,
          sqlType: c.sqlTypeText,
          nullable: c.nullable,
          primaryKey: c.primaryKey,
          source: c.source,
          foreignKey: c.foreignKey,
        })),
        explode: t.explode,
        dedupe: t.dedupe,
        forceReimport: t.forceReimport,
        truncateBeforeImport: t.truncateBeforeImport,
        dateThreshold: t.dateThreshold,
        propagateDeletes: t.propagateDeletes,
        line: t.line,
      };
    }),
    collections: model.collections,
  };
}

const command: Command = {
  summary: 'check pipeline.yaml and print the tables in load order',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const flags = parseFlags(ctx.argv, { pipeline: { type: 'string' }, json: { type: 'boolean' } });
    const cfg = commandConfig(ctx, { pipeline: flags.pipeline });
    const model = await loadPipeline(cfg.pipelineFile, { globalDateThreshold: cfg.globalDateThreshold });
    if (flags.json) {
      writeJson(ctx.stdout, { ok: true, ...modelJson(model) });
      return 0;
    }
    const color = paint(ctx.stdout, ctx.env);
    const rows = model.loadOrder.map((name, i) => {
      const t = model.tables.get(name)!;
      return [String(i + 1), t.name, String(t.exportOrder), describeSource(t), describeStrategy(t)];
    });
    ctx.stdout.write(formatTable(['#', 'table', 'export_order', 'source', 'strategy'], rows));
    ctx.stdout.write(
      `\n${color.green('valid:')} ${model.file}: ${model.tables.size} tables from ${model.collections.length} collections, ` +
        `timezone ${model.settings.timezone}, sha256 ${model.sha256.slice(0, 12)}…\n`,
    );
    return 0;
  },
};

export default command;
