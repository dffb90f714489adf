// Keys files read ahead of their step. A complete read with no claim kept reads its keys file in the
// client only (stage-files.ts noIdentityIn: its checksum and whether a document's `_id` is not its
// key's text), and PostgreSQL waited for that read: 5–21 ms a table at 1M documents (5.2 MB for
// users_quizzs_questions), about 0.2 s for the whole load. Read one after the other in load order
// from the first step on, the files are read while PostgreSQL works on the tables before theirs.
// The step still verifies what it gets (header, checksum, count) exactly as before; only the
// moment of the read moves.
import { transformFileOf } from '../staging/run-folder.ts';
import type { LoadContext } from './load-context.ts';
import { scanKeysFile, type KeysScan } from './copy-in.ts';
import type { LoadSession } from './session.ts';

interface ReadAhead {
  /** Scans started and not yet taken, by file. */
  readonly scans: Map<string, Promise<KeysScan>>;
  /** Every file ever scheduled (a file is read ahead once). */
  readonly scheduled: Set<string>;
  /** The last scan scheduled: the next one starts after it. */
  tail: Promise<unknown>;
}

const ahead = new WeakMap<LoadSession, ReadAhead>();

/**
 * The keys files a step will read without a COPY if no claim is kept (the common case of a full
 * run), of the tables whose files are final: in `etl run` a table's record comes only once the
 * transform has finished its files (load/start.ts), and a file still being written is never read.
 */
function keysFilesToScan(ctx: LoadContext): string[] {
  const files: string[] = [];
  for (const name of ctx.planned) {
    const staged = ctx.stagedSoFar(name);
    const shape = ctx.shapeOf(name);
    if (!staged?.keys || staged.complete !== true || shape.kind === 'dedupe_upsert' || shape.docKey === null) continue;
    // Only a file in the run's transform folder (stage-files.ts stagedFile refuses any other).
    const file = transformFileOf(ctx.paths, staged.keys.file);
    if (file !== null) files.push(file);
  }
  return files;
}

/**
 * Schedules the keys files not read ahead yet, one after the other in load order (called by every
 * step: in `etl run` more tables are final each time); a failed read is reported by the step that
 * asks for it.
 */
export function readKeysAhead(ctx: LoadContext): void {
  let state = ahead.get(ctx.session);
  if (!state) {
    state = { scans: new Map(), scheduled: new Set(), tail: Promise.resolve() };
    ahead.set(ctx.session, state);
  }
  const signal = ctx.session.workSignal;
  for (const file of keysFilesToScan(ctx)) {
    if (state.scheduled.has(file)) continue;
    state.scheduled.add(file);
    const scan = state.tail.then(() => scanKeysFile(file, signal));
    state.tail = scan.catch(() => undefined);
    state.scans.set(file, scan);
  }
}

/** The scan of a keys file: the one read ahead (taken once), else a read now. */
export function keysScanOf(session: LoadSession, file: string): Promise<KeysScan> {
  const scans = ahead.get(session)?.scans;
  const scan = scans?.get(file);
  if (!scan) return scanKeysFile(file, session.signal);
  scans!.delete(file);
  return scan;
}
