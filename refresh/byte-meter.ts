// Counts bytes as they stream past, reports progress at most every `intervalMs`, and keeps the
// first bytes so the caller can check what kind of file it received without re-reading it.
import { Transform, type TransformCallback } from 'node:stream';

export interface ByteProgress {
  readonly bytes: number;
  readonly elapsedMs: number;
  /** Average since the start. */
  readonly bytesPerSecond: number;
}

export class ByteMeter extends Transform {
  bytes = 0;
  private readonly started = Date.now();
  private lastReport = 0;
  private readonly headLimit: number;
  private readonly headChunks: Buffer[] = [];
  private headBytes = 0;
  private readonly intervalMs: number;

  constructor(
    private readonly onProgress: ((p: ByteProgress) => void) | undefined,
    o: { intervalMs?: number; keepHead?: number } = {},
  ) {
    super();
    this.intervalMs = o.intervalMs ?? 250;
    this.headLimit = o.keepHead ?? 0;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.headBytes < this.headLimit) {
      const part = chunk.subarray(0, this.headLimit - this.headBytes);
      this.headChunks.push(Buffer.from(part));
      this.headBytes += part.length;
    }
    const now = Date.now();
    if (this.onProgress && now - this.lastReport >= this.intervalMs) {
      this.lastReport = now;
      this.onProgress(this.progress());
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.onProgress?.(this.progress());
    callback();
  }

  progress(): ByteProgress {
    const elapsedMs = Date.now() - this.started;
    return { bytes: this.bytes, elapsedMs, bytesPerSecond: elapsedMs > 0 ? Math.round((this.bytes * 1000) / elapsedMs) : 0 };
  }

  /** The first `keepHead` bytes that went through. */
  head(): Buffer {
    return Buffer.concat(this.headChunks);
  }
}

/** Keeps the last lines of a text stream (a child's stderr) for error messages, without buffering it all. */
export async function collectTail(stream: AsyncIterable<Buffer | string>, maxChars = 4_000): Promise<string> {
  let tail = '';
  for await (const chunk of stream) {
    tail += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    if (tail.length > maxChars * 2) tail = tail.slice(-maxChars);
  }
  return tail.slice(-maxChars).trim();
}
