// The extract stage as the commands show it: its progress events → tracker calls, its end line, its
// summary table. Used by `etl extract` and by `etl run`.
import path from 'node:path';
import type { EtlConfig, PostgresConfig } from '../../connect/config.ts';
import { UsageError } from '../../errors/etl-error.ts';
import type { Endpoints } from '../../connect/endpoints.ts';
import { runExtract, type ExtractOptions, type ExtractProgressEvent, type ExtractReport, type ExtractSource } from '../../extract/index.ts';
import { formatTable } from '../../report/text-table.ts';
import type { CommandContext } from '../command.ts';
import { count, duration } from '../progress/meter.ts';
import type { ProgressView, StageTracker } from '../progress/view.ts';
import { formatBytes } from '../../audit/byte-size.ts';
import { isMongoSource } from '../../connect/config.ts';
import { parseSince, writeWarnings, type FlowEnv } from '../stage-flow.ts';

/** A --source that names a server (any mongodb… shape, malformed ones included: connect/ names the problem) rather than a dump. */
function isMongoUrl(text: string): boolean {
  return isMongoSource(text);
}

/** --source: a live server (the flag's URL, or the configured one, tunnelled in remote mode) or a dump. */
function extractSource(flag: string | undefined, mongoDb: string | undefined, ctx: CommandContext, config: EtlConfig, endpoints: Endpoints): ExtractSource {
  if (flag !== undefined && !isMongoUrl(flag)) return { kind: 'dump', path: path.resolve(ctx.cwd, flag), database: mongoDb ?? null };
  return { kind: 'mongodb', mongo: flag === undefined ? endpoints.mongo : config.mongo, secrets: config.secrets };
}

/** The flags of the extract stage (etl extract, etl run). */
export const EXTRACT_FLAGS = {
  full: { type: 'boolean' },
  since: { type: 'string' },
  'propagate-deletes': { type: 'boolean' },
  source: { type: 'string' },
  'mongo-db': { type: 'string' },
} as const;

export interface ExtractFlags {
  readonly full?: boolean;
  readonly since?: string;
  readonly 'propagate-deletes'?: boolean;
  readonly source?: string;
  readonly 'mongo-db'?: string;
}

/** The flags checked once: --since read as a date, --full and --since exclusive; a live source or a dump. */
export function readExtractFlags(flags: ExtractFlags): { readonly since: Date | null; readonly live: boolean } {
  if (flags.full && flags.since) throw new UsageError('bad_arguments', '--full and --since cannot be used together', { context: { flag: '--since' } });
  return { since: flags.since !== undefined ? parseSince(flags.since) : null, live: flags.source === undefined || isMongoUrl(flags.source) };
}

/** What runExtract gets from the flags, the configuration and the servers. */
export function extractOptions(flags: ExtractFlags, env: FlowEnv, tables: readonly string[] | undefined, postgres: PostgresConfig | undefined): Omit<ExtractOptions, 'onProgress'> {
  const { ctx, config, model, endpoints } = env;
  return {
    model,
    stagingDir: config.stagingDir,
    source: extractSource(flags.source, flags['mongo-db'], ctx, config, endpoints),
    postgres,
    secrets: config.secrets,
    tables,
    full: flags.full === true,
    since: readExtractFlags(flags).since,
    propagateDeletes: flags['propagate-deletes'] === true,
    globalDateThreshold: config.globalDateThreshold,
    signal: ctx.signal,
  };
}

/** `also`: another listener of the extract's events (`etl run` feeds its transform from them). */
export function extractStage(view: ProgressView, options: Omit<ExtractOptions, 'onProgress'>, also?: (e: ExtractProgressEvent) => void): Promise<ExtractReport> {
  return view.stage({ name: 'extract', title: 'Extract: connecting and reading watermarks', summary: (r) => extractLine(r) }, (tracker) =>
    runExtract({
      ...options,
      onProgress: (e) => {
        trackExtract(tracker, e);
        also?.(e);
      },
    }),
  );
}

function trackExtract(t: StageTracker, e: ExtractProgressEvent): void {
  switch (e.kind) {
    case 'started':
      return t.plan(`Extract into run ${e.runId}`, e.collections.map((name) => ({ name, total: null })), 'documents');
    case 'collection_started':
      t.progress(e.collection, 0, e.total);
      return t.phase(e.collection, e.requested !== undefined ? `${count(e.requested)} _ids (repair)` : e.from ? `since ${e.from}` : 'full read');
    case 'collection_progress':
      return t.progress(e.collection, e.documents, e.total);
    case 'collection_retry':
      return t.phase(e.collection, `connection lost (${e.error}); reconnecting, attempt ${e.attempt}`);
    case 'collection_ids_progress':
      return t.phase(e.collection, `${count(e.ids)} ids (delete propagation)`);
    case 'collection_resorting':
      return t.phase(e.collection, 'dump not in _id order: sorting on disk');
    case 'warning':
      return t.detail(e.collection, `warning: ${e.message}`);
    case 'collection_done':
      return t.finish(e.collection, `${e.collection}: ${count(e.record.documents)} documents in ${duration(e.seconds * 1000)}`);
  }
}

/** `extract: 20,000 documents from 22 collection(s) (5.2 MB) in 1.23 s; run X` */
export function extractLine(r: ExtractReport, where = `run ${r.runId}`, ms = Date.parse(r.endedAt) - Date.parse(r.startedAt)): string {
  return `extract: ${count(r.documents)} documents from ${r.collections.length} collection(s) (${formatBytes(r.bytes)}) in ${duration(ms)}; ${where}`;
}

/** The --json document: the report, with the snake_case names scripts have read since the first release. */
export function extractJson(r: ExtractReport) {
  return { ok: true, ...r, run_id: r.runId, run_dir: r.runDir, started_at: r.startedAt, ended_at: r.endedAt, server_started_at: r.serverStartedAt, propagate_deletes: r.propagateDeletes };
}

export function renderExtract(ctx: CommandContext, r: ExtractReport): void {
  const rows = r.collections.map((c) => [c.collection, c.documents, c.bytes, c.watermark ? (c.watermark.from ?? 'full') : 'by _id (repair)', c.seconds.toFixed(2)]);
  ctx.stdout.write(formatTable(['collection', 'documents', 'bytes', 'watermark from', 'seconds'], rows));
  const p = r.propagateDeletes;
  if (p) {
    const staged = r.collections.filter((c) => c.ids).map((c) => `${c.collection} (${count(c.ids!.documents)})`);
    ctx.stdout.write(`delete propagation: _id sets staged for ${staged.length ? staged.join(', ') : 'no collection'}; tables ${p.tables.join(', ') || '(none)'}\n`);
    if (p.unsupported.length) ctx.stdout.write(`  not propagated (dedupe tables): ${p.unsupported.map((u) => u.table).join(', ')}; their rows follow deleted parents by foreign key\n`);
  }
  writeWarnings(ctx, r.warnings);
}
