// The extract stage as the commands show it: its progress events → tracker calls, its end line, its
// summary table. Used by `etl extract` and by `etl run`.
import path from 'node:path';
import type { EtlConfig } from '../../connect/config.ts';
import type { Endpoints } from '../../connect/endpoints.ts';
import { runExtract, type ExtractOptions, type ExtractProgressEvent, type ExtractReport, type ExtractSource } from '../../extract/index.ts';
import { formatTable } from '../../report/text-table.ts';
import type { CommandContext } from '../command.ts';
import { count, duration } from '../progress/meter.ts';
import type { ProgressView, StageTracker } from '../progress/view.ts';
import { formatBytes } from '../../audit/byte-size.ts';
import { isMongoSource } from '../../connect/config.ts';

/** A --source that names a server (any mongodb… shape, malformed ones included: connect/ names the problem) rather than a dump. */
export function isMongoUrl(text: string): boolean {
  return isMongoSource(text);
}

/** --source: a live server (the flag's URL, or the configured one, tunnelled in remote mode) or a dump. */
export function extractSource(flag: string | undefined, mongoDb: string | undefined, ctx: CommandContext, config: EtlConfig, endpoints: Endpoints): ExtractSource {
  if (flag !== undefined && !isMongoUrl(flag)) return { kind: 'dump', path: path.resolve(ctx.cwd, flag), database: mongoDb ?? null };
  return { kind: 'mongodb', mongo: flag === undefined ? endpoints.mongo : config.mongo, secrets: config.secrets };
}

export function extractStage(view: ProgressView, options: Omit<ExtractOptions, 'onProgress'>): Promise<ExtractReport> {
  return view.stage({ name: 'extract', title: 'Extract: connecting and reading watermarks', summary: (r) => extractLine(r) }, (tracker) =>
    runExtract({ ...options, onProgress: (e) => trackExtract(tracker, e) }),
  );
}

function trackExtract(t: StageTracker, e: ExtractProgressEvent): void {
  switch (e.type) {
    case 'run-started':
      return t.plan(`Extract into run ${e.runId}`, e.collections.map((name) => ({ name, total: null })), 'documents');
    case 'collection-started':
      t.progress(e.collection, 0, e.total);
      return t.phase(e.collection, e.requested !== undefined ? `${count(e.requested)} _ids (repair)` : e.from ? `since ${e.from}` : 'full read');
    case 'collection-progress':
      return t.progress(e.collection, e.documents, e.total);
    case 'collection-retry':
      return t.phase(e.collection, `connection lost (${e.error}); reconnecting, attempt ${e.attempt}`);
    case 'collection-ids-progress':
      return t.phase(e.collection, `${count(e.ids)} ids (delete propagation)`);
    case 'collection-resorting':
      return t.phase(e.collection, 'dump not in _id order: sorting on disk');
    case 'warning':
      return t.detail(e.collection, `warning: ${e.message}`);
    case 'collection-done':
      return t.finish(e.collection, `${e.collection}: ${count(e.record.documents)} documents in ${duration(e.seconds * 1000)}`);
  }
}

/** `extract: 20,000 documents from 22 collection(s) (5.2 MB) in 1.23 s; run X` */
export function extractLine(r: ExtractReport, where = `run ${r.run_id}`, ms = Date.parse(r.ended_at) - Date.parse(r.started_at)): string {
  return `extract: ${count(r.documents)} documents from ${r.collections.length} collection(s) (${formatBytes(r.bytes)}) in ${duration(ms)}; ${where}`;
}

export function renderExtract(ctx: CommandContext, r: ExtractReport): void {
  const rows = r.collections.map((c) => [c.collection, c.documents, c.bytes, c.watermark ? (c.watermark.from ?? 'full') : 'by _id (repair)', c.seconds.toFixed(2)]);
  ctx.stdout.write(formatTable(['collection', 'documents', 'bytes', 'watermark from', 'seconds'], rows));
  const p = r.propagate_deletes;
  if (p) {
    const staged = r.collections.filter((c) => c.ids).map((c) => `${c.collection} (${count(c.ids!.documents)})`);
    ctx.stdout.write(`delete propagation: _id sets staged for ${staged.length ? staged.join(', ') : 'no collection'}; tables ${p.tables.join(', ') || '(none)'}\n`);
    if (p.unsupported.length) ctx.stdout.write(`  not propagated (dedupe tables): ${p.unsupported.map((u) => u.table).join(', ')}; their rows follow deleted parents by foreign key\n`);
  }
  writeWarnings(ctx, r.warnings);
}

export function writeWarnings(ctx: CommandContext, warnings: readonly string[]): void {
  for (const w of warnings) ctx.stderr.write(`warning: ${w}\n`);
}
