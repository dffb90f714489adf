// The flow every stage command shares: flags → configuration → pipeline model → servers (SSH
// tunnels in remote mode) → the stage(s) with their progress → the result, rendered by verbosity:
//   --json     the report as JSON on stdout, nothing else
//   --quiet    the final line only (errors still on stderr)
//   otherwise  the per-table summary, then the final line: totals and elapsed time
import { printableText } from '../errors/printable.ts';
import type { ConfigFlags, EtlConfig } from '../connect/config.ts';
import { openEndpoints, type Endpoints } from '../connect/endpoints.ts';
import { UsageError } from '../errors/etl-error.ts';
import { loadPipeline } from '../model/load-pipeline.ts';
import { parseInstant } from '../model/instant.ts';
import type { PipelineModel } from '../model/types.ts';
import type { CommandContext } from './command.ts';
import { commandConfig } from './config.ts';
import { paint, writeJson } from './output.ts';
import { progressView, type ProgressView } from './progress/view.ts';

export interface FlowEnv {
  readonly ctx: CommandContext;
  readonly config: EtlConfig;
  readonly model: PipelineModel;
  readonly endpoints: Endpoints;
  readonly view: ProgressView;
}

export interface StageFlow<R> {
  readonly json: boolean;
  readonly config: Omit<ConfigFlags, 'envFile'>;
  /** Which servers the stage(s) need; remote ones are reached through SSH tunnels. */
  servers(config: EtlConfig): { readonly needMongo: boolean; readonly needPostgres: boolean };
  /** Several stages in a row: each prints its own end line in logs. */
  readonly multiStage?: boolean;
  work(env: FlowEnv): Promise<R>;
  /** The --json document (default: `{ ok: true, ...report }`). */
  toJson?(report: R): unknown;
  /** The summary for people (tables on stdout, warnings on stderr); not under --quiet. */
  render(report: R, ctx: CommandContext): void;
  /** The last line: what was done, totals and elapsed time. */
  finalLine(report: R, elapsedMs: number, ctx: CommandContext): string;
  /** The exit code of a finished report (default 0; `etl repair` says 1 when differences remain). */
  exitCode?(report: R): number;
}

export async function runStageFlow<R>(ctx: CommandContext, flow: StageFlow<R>): Promise<number> {
  const started = Date.now();
  const config = commandConfig(ctx, flow.config);
  const model = await loadPipeline(config.pipelineFile, { globalDateThreshold: config.globalDateThreshold });
  const endpoints = await openEndpoints(config, { ...flow.servers(config), signal: ctx.signal });
  let report: R;
  try {
    const view = progressView(ctx, { json: flow.json, multiStage: flow.multiStage });
    report = await flow.work({ ctx, config, model, endpoints, view });
  } finally {
    await endpoints.close();
  }
  const code = flow.exitCode?.(report) ?? 0;
  if (flow.json) {
    writeJson(ctx.stdout, flow.toJson ? flow.toJson(report) : { ok: true, ...report });
    return code;
  }
  if (ctx.verbosity !== 'quiet') flow.render(report, ctx);
  ctx.stdout.write(`${flow.finalLine(report, Date.now() - started, ctx)}\n`);
  return code;
}

/** The flags every stage command takes. */
export const STAGE_FLAGS = {
  staging: { type: 'string' },
  pipeline: { type: 'string' },
  tables: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** What a stage wants the user to know that did not stop it, one line each on stderr. */
export function writeWarnings(ctx: CommandContext, warnings: readonly string[]): void {
  const color = paint(ctx.stderr, ctx.env);
  // A warning may quote a document (an _id, a value): bounded and without terminal controls, as errors are.
  for (const w of warnings) ctx.stderr.write(`${color.yellow('warning:')} ${printableText(w)}\n`);
}

/** `--tables a,b` → ['a', 'b']; absent → undefined. */
export function parseTables(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const tables = text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (tables.length === 0) throw new UsageError('bad_arguments', '--tables needs at least one table name', { context: { flag: '--tables' }, hint: 'e.g. --tables users,users_targets' });
  return tables;
}

/** `2024-03-01` (midnight UTC) or an ISO instant (model/instant.ts). */
export function parseSince(text: string): Date {
  const d = parseInstant(text);
  if (d === null) {
    throw new UsageError('bad_since', `--since: "${text}" is not a date`, { context: { flag: '--since' }, hint: 'use 2024-03-01 (midnight UTC) or an ISO instant like 2024-03-01T10:00:00Z' });
  }
  return d;
}
