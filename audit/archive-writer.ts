// The .tar.gz `etl pack` writes, fed a file at a time by its caller (who reads and scans each file
// once): entries are tar's own (tar.Pack of tar.ReadEntry, portable, as `tar.create` would write
// them from disk), compressed by node's zlib off the main thread, into <out>.partial, renamed to
// <out> only by commit(). A .partial is created exclusively: a second pack to the same file is
// refused instead of mixing its bytes into the first one's, and a stale one (a pack killed with
// SIGKILL, a power cut) is removed, and said so, by the next pack to that file.
import { open, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGzip, type ZlibOptions } from 'node:zlib';
import * as tar from 'tar';
import { StagingError } from '../errors/etl-error.ts';
import { roughDuration } from '../staging/durations.ts';
import { AtomicFileSink, writeFailure, type FileFigures } from '../staging/atomic-file.ts';
import { formatBytes } from './byte-size.ts';

/** A .partial written within this long may belong to a pack still running: never removed. */
export const STALE_PARTIAL_MS = 60_000;

export interface EntryStat {
  readonly size: number;
  readonly mode: number;
  readonly mtime: Date;
}

export class ArchiveWriter {
  private readonly pack = new tar.Pack({ portable: true, strict: true });
  private readonly stop = new AbortController();
  private readonly done: Promise<void>;
  private failure: unknown = null;
  private entry: tar.ReadEntry | null = null;

  private constructor(
    private readonly sink: AtomicFileSink,
    signal: AbortSignal | undefined,
    onArchiveBytes: (n: number) => void,
  ) {
    // zlib compresses on the thread pool: room for a few reads lets it work while this thread scans
    // the next (zlib passes the stream options on to its Transform; its types do not list them).
    const gzip = createGzip({ chunkSize: 1 << 16, writableHighWaterMark: 4 << 20 } as ZlibOptions);
    const signals = signal ? AbortSignal.any([signal, this.stop.signal]) : this.stop.signal;
    this.done = pipeline(this.pack, gzip, portableGzipBytes(onArchiveBytes), sink, { signal: signals });
    this.done.catch((error: unknown) => {
      this.failure ??= error;
      // A writer waiting for room would wait forever: wake it to see the failure.
      this.entry?.emit('drain');
    });
  }

  /** Opens <out>.partial (removing a stale one, see `removedPartial`), or refuses a live one. */
  static async open(out: string, signal: AbortSignal | undefined, onArchiveBytes: (n: number) => void): Promise<{ writer: ArchiveWriter; removedPartial: string | null }> {
    // A folder where no file can be made (/proc, a read-only mount) is a failed write of the archive, not a bug.
    const removedPartial = await claimPartial(`${out}.partial`).catch((error: unknown) => {
      throw writeFailure(out, error);
    });
    return { writer: new ArchiveWriter(new AtomicFileSink(out), signal, onArchiveBytes), removedPartial };
  }

  /** Starts the next entry; its bytes follow with write(), then endEntry(). */
  startEntry(name: string, st: EntryStat): void {
    this.entry = new tar.ReadEntry(new tar.Header({ path: name, mode: st.mode, size: st.size, mtime: st.mtime, type: 'File' }));
    this.pack.write(this.entry);
  }

  /** Waits while the archive has no room (backpressure down to the disk). */
  async write(bytes: Buffer): Promise<void> {
    const entry = this.entry!;
    if (this.failure === null && !entry.write(bytes)) await new Promise((resolve) => entry.once('drain', resolve));
    if (this.failure !== null) throw this.failure;
  }

  endEntry(): void {
    this.entry!.end();
  }

  /** Ends the archive: every byte is in <out>.partial. */
  async end(): Promise<void> {
    this.pack.end();
    await this.done;
  }

  /** Renames the ended archive into place. */
  async commit(): Promise<FileFigures> {
    return await this.sink.commit();
  }

  /** Stops writing and removes <out>.partial at once (a failure, a secret found). */
  async discard(): Promise<void> {
    this.stop.abort();
    await this.done.catch(() => undefined);
    await this.sink.discard();
  }
}

/**
 * Creates `partial` exclusively. One that exists was written by a pack still running (written
 * within STALE_PARTIAL_MS: refused) or left by one that was killed (removed, returned to say so).
 */
async function claimPartial(partial: string): Promise<string | null> {
  let removed: string | null = null;
  for (;;) {
    try {
      await (await open(partial, 'wx')).close();
      return removed;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || removed !== null) throw error;
    }
    const st = await stat(partial).catch(() => null);
    if (st === null) continue;
    const age = Date.now() - st.mtimeMs;
    if (age < STALE_PARTIAL_MS) {
      throw new StagingError('stage_running', `another etl pack seems to be writing ${partial} (written ${roughDuration(age)} ago): not packing over it`, {
        context: { file: partial },
        hint: `wait for that pack to finish; if none is running (it was killed), remove ${partial}, or pack again after ${roughDuration(STALE_PARTIAL_MS)}, which removes it`,
      });
    }
    await rm(partial, { force: true });
    removed = `removed ${partial} (${formatBytes(st.size)}, last written ${roughDuration(age)} ago): an unfinished archive left by an etl pack that did not end`;
  }
}

/**
 * The archive's bytes on their way to the file, counted. gzip's header names the OS that wrote it;
 * node's zlib says Unix (3) and has no option for it, tar's own portable gzip says "unknown" (255):
 * 255 here, so the archive is byte for byte the one `tar.create({ gzip: true, portable: true })`
 * writes (and earlier etl versions wrote), on any machine. tar's gzip would need no patch, but it
 * compresses on this thread, in turn with the scan; node's compresses on the thread pool meanwhile.
 */
function portableGzipBytes(onBytes: (n: number) => void): (chunks: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  const OS_BYTE = 9;
  return async function* (chunks) {
    let seen = 0;
    for await (const chunk of chunks) {
      if (seen <= OS_BYTE && OS_BYTE < seen + chunk.length) chunk[OS_BYTE - seen] = 255;
      seen += chunk.length;
      onBytes(chunk.length);
      yield chunk;
    }
  };
}
