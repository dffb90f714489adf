// Staged files appear whole or not at all: bytes go to `<file>.partial` (small files written whole:
// `<file>.<pid>.partial`) and the file is renamed into place only when the stage says it is complete.
// The sha256, byte and line counts are taken as the bytes stream through, so nobody re-reads a file
// to checksum it.
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, existsSync, statSync, type WriteStream } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import nodePath from 'node:path';
import { Writable } from 'node:stream';
import { StagingError } from '../errors/etl-error.ts';
import { isPermissionDenied, systemWords } from '../errors/system-words.ts';

/**
 * A write that failed, as a StagingError naming the file: `disk_full` (ENOSPC, EDQUOT) says the disk
 * is full and which one; a missing folder (ENOENT, ENOTDIR) is said in words; anything else (EACCES,
 * EROFS, EIO…) says the system's reason.
 */
export function writeFailure(file: string, cause: unknown): StagingError {
  if (cause instanceof StagingError) return cause;
  const code = (cause as NodeJS.ErrnoException)?.code;
  const dir = nodePath.dirname(file);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StagingError('disk_full', `cannot write ${file}: the disk is full (${code === 'ENOSPC' ? 'ENOSPC: no space left on device' : 'EDQUOT: disk quota exceeded'})`, {
      context: { file },
      hint: `free space on the disk that holds ${dir} (see \`df -h ${dir}\`), or give the staging folder another disk (--staging / ETL_STAGING), then run the stage again`,
      cause,
    });
  }
  // A missing folder in words, naming the file asked for (the system's message names our `.partial`
  // file); an ENOENT while the folder is there (the partial file removed under us) keeps the system's.
  if (code === 'ENOTDIR' || (code === 'ENOENT' && !existsSync(dir))) {
    const words = code === 'ENOENT' ? `the folder ${dir} does not exist` : `a part of ${dir} is a file, not a folder`;
    return new StagingError('write_failed', `cannot write ${file}: ${words}`, { context: { file }, hint: 'create the folder, or give another path', cause });
  }
  return new StagingError('write_failed', `cannot write ${file}: ${systemWords(cause)}`, {
    context: { file },
    hint: isPermissionDenied(cause) ? `check that ${dir} is writable by this user` : undefined,
    cause,
  });
}

/**
 * What stands at `file` when it is not a regular file (a link followed): 'a folder', 'a FIFO',
 * 'a socket' or 'a device'; null for a regular file, nothing, or what cannot be looked at (the
 * write then says why).
 */
export function nonRegularKind(file: string): string | null {
  let s;
  try {
    s = statSync(file, { throwIfNoEntry: false });
  } catch {
    return null;
  }
  if (s === undefined || s.isFile()) return null;
  if (s.isDirectory()) return 'a folder';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  return 'a device';
}

/**
 * Refuses to write `file` when something other than a regular file stands there: the file is written
 * beside it and renamed over it, which would replace the node itself (as root, /dev/null became the
 * file written). A link to a regular file is replaced by the file, as always.
 */
function refuseNonRegular(file: string): void {
  const kind = nonRegularKind(file);
  if (kind === null) return;
  throw new StagingError('write_failed', `cannot write ${file}: it is ${kind}, not a regular file, and etl replaces the file it writes (FILE.partial renamed over FILE)`, {
    context: { file },
    hint: `remove ${file} or the link there, or write elsewhere`,
  });
}

export interface FileFigures {
  readonly bytes: number;
  readonly sha256: string;
  /** Newline characters written: records for NDJSON, rows + header for CSV. */
  readonly lines: number;
}

/**
 * A Writable that hashes and counts what it writes to `<path>.partial`. After the pipeline that
 * feeds it has finished, call `commit()` to rename it into place, or `discard()` on failure.
 */
export class AtomicFileSink extends Writable {
  readonly path: string;
  readonly partialPath: string;
  private readonly file: WriteStream;
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private lines = 0;
  private digest: string | null = null;

  constructor(path: string, options: { highWaterMark?: number } = {}) {
    super({ highWaterMark: options.highWaterMark ?? 1 << 16 });
    // Before a byte is written: a stage would otherwise do all its work to fail at the rename.
    refuseNonRegular(path);
    this.path = path;
    this.partialPath = `${path}.partial`;
    this.file = createWriteStream(this.partialPath, { highWaterMark: 1 << 20 });
    // A write error (disk full, folder removed) must fail the pipeline, not crash the process,
    // and say which file.
    this.file.on('error', (err) => {
      if (!this.destroyed) this.destroy(writeFailure(this.partialPath, err));
    });
  }

  override _write(chunk: Buffer | string, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    this.hash.update(buf);
    this.bytes += buf.length;
    for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) this.lines += 1;
    // Backpressure: wait for the file stream to drain before accepting more.
    if (this.file.write(buf)) callback();
    else this.file.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.file.end((err?: Error | null) => callback(err ? writeFailure(this.partialPath, err) : null));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.file.destroy();
    callback(error);
  }

  /** Figures of what was written (valid once the stream has finished). */
  figures(): FileFigures {
    this.digest ??= this.hash.digest('hex');
    return { bytes: this.bytes, sha256: this.digest, lines: this.lines };
  }

  /** Renames the finished file into place and returns its figures. */
  async commit(): Promise<FileFigures> {
    if (!this.writableFinished) throw new Error(`commit() before ${this.partialPath} finished`);
    const figures = this.figures();
    // Again: the node may have appeared while the file was written.
    refuseNonRegular(this.path);
    try {
      await rename(this.partialPath, this.path);
    } catch (cause) {
      throw writeFailure(this.path, cause);
    }
    return figures;
  }

  /** Removes the partial file (after a failure). */
  async discard(): Promise<void> {
    // The file stream opens `<path>.partial` on the thread pool: removed before that open ran, the
    // file would appear after the removal. Its close comes after its open, so wait for it.
    const closed = this.file.closed ? Promise.resolve() : new Promise<void>((resolve) => this.file.once('close', () => resolve()));
    this.destroy();
    await closed;
    await rm(this.partialPath, { force: true });
  }
}

/** The write of each file under way in this process, so that the next one waits for it. */
const writesUnderWay = new Map<string, Promise<unknown>>();

/**
 * Writes a small file atomically (manifests, pointers): `<path>.<pid>.partial`, then rename. A failed
 * write (a full disk) leaves no partial file behind and names the file; `path` keeps its old bytes.
 * Several writers of one file (two runs into one staging folder both set `latest`) each rename their
 * own partial file, and the last rename wins: with one shared partial file, one writer renamed the
 * other's away and the other failed. Within a process, writes of one file run one after the other.
 */
export function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  const write = (writesUnderWay.get(path) ?? Promise.resolve()).then(() => writeOnce(path, data));
  const settled = write.catch(() => undefined);
  writesUnderWay.set(path, settled);
  void settled.then(() => {
    if (writesUnderWay.get(path) === settled) writesUnderWay.delete(path);
  });
  return write;
}

async function writeOnce(path: string, data: string | Buffer): Promise<void> {
  const partial = `${path}.${process.pid}.partial`;
  try {
    refuseNonRegular(path);
    await writeFile(partial, data);
    await rename(partial, path);
  } catch (cause) {
    await rm(partial, { force: true }).catch(() => undefined);
    throw writeFailure(path, cause);
  }
}
