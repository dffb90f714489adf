// Staged files appear whole or not at all: bytes go to `<file>.partial` and the file is renamed
// into place only when the stage says it is complete. The sha256, byte and line counts are taken
// as the bytes stream through, so nobody re-reads a file to checksum it.
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Writable } from 'node:stream';

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
    this.path = path;
    this.partialPath = `${path}.partial`;
    this.file = createWriteStream(this.partialPath, { highWaterMark: 1 << 20 });
    // A write error (disk full, folder removed) must fail the pipeline, not crash the process.
    this.file.on('error', (err) => {
      if (!this.destroyed) this.destroy(err);
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
    this.file.end((err?: Error | null) => callback(err ?? null));
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
    await rename(this.partialPath, this.path);
    return figures;
  }

  /** Removes the partial file (after a failure). */
  async discard(): Promise<void> {
    this.destroy();
    await rm(this.partialPath, { force: true });
  }
}

/** Writes a small file atomically (manifests, pointers). */
export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  const partial = `${path}.partial`;
  await writeFile(partial, data);
  await rename(partial, path);
}
