// Keys files read ahead of their step. A complete read with no claim kept reads its keys file in the
// client only (stage-files.ts noIdentityIn: its checksum and whether a document's `_id` is not its
// key's text), and PostgreSQL waited for that read: 8.9 MB for users_logbook at 1M documents, about
// 0.2 s for the whole load. Read one after the other in load order from the first step on, the files
// are read while PostgreSQL works on the tables before theirs. The step still verifies what it gets
// (header, checksum, count) exactly as before; only the moment of the read moves.
import path from 'node:path';
import type { LoadContext } from './load-context.ts';
import { scanKeysFile, type KeysScan } from './copy-in.ts';
import type { LoadSession } from './session.ts';

const ahead = new WeakMap<LoadSession, Map<string, Promise<KeysScan>>>();

/** The keys files a step will read without a COPY if no claim is kept (the common case of a full run). */
function keysFilesToScan(ctx: LoadContext): string[] {
  const files: string[] = [];
  for (const name of ctx.planned) {
    const staged = ctx.staged(name);
    const shape = ctx.shapeOf(name);
    if (!staged.keys || staged.complete !== true || shape.kind === 'dedupe_upsert' || shape.docKey === null) continue;
    // Only a file in the run's transform folder (stage-files.ts stagedFile refuses any other).
    const file = path.resolve(ctx.paths.dir, staged.keys.file);
    if (path.dirname(file) === path.resolve(ctx.paths.transformDir)) files.push(file);
  }
  return files;
}

/** Starts reading the load's keys files, one at a time, once a session; a failed read is reported by the step that asks for it. */
export function readKeysAhead(ctx: LoadContext): void {
  if (ahead.has(ctx.session)) return;
  const scans = new Map<string, Promise<KeysScan>>();
  ahead.set(ctx.session, scans);
  const signal = ctx.session.workSignal;
  let previous: Promise<unknown> = Promise.resolve();
  for (const file of keysFilesToScan(ctx)) {
    const scan = previous.then(() => scanKeysFile(file, signal));
    previous = scan.catch(() => undefined);
    scans.set(file, scan);
  }
}

/** The scan of a keys file: the one read ahead (taken once), else a read now. */
export function keysScanOf(session: LoadSession, file: string): Promise<KeysScan> {
  const scans = ahead.get(session);
  const scan = scans?.get(file);
  if (!scan) return scanKeysFile(file, session.signal);
  scans!.delete(file);
  return scan;
}
