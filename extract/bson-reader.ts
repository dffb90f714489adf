// Reads BSON documents one by one from a file on disk (a mongodump `.bson`, `.bson.gz` or archive),
// without ever holding more than one document plus one read chunk in memory. Offsets are counted in
// the decompressed byte stream, so "offset 1234" points at the same place `bsondump` would.
import { createReadStream } from 'node:fs';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { SourceError } from '../errors/etl-error.ts';
import { isPermissionDenied, systemCode, systemWords } from '../errors/system-words.ts';
import { isGzipFile } from '../staging/gzip-magic.ts';

/** The largest document a server accepts is 16 MiB; anything far above is a corrupt length. */
const MAX_DOCUMENT_BYTES = 48 * 1024 * 1024;
const MIN_DOCUMENT_BYTES = 5;
// 64 KiB, not more: a chunk stays alive while its documents are decoded and encoded, and a 256 KiB
// one lived long enough to be promoted, so read buffers piled up outside the heap until a full GC
// (measured: +64 MB of arrayBuffers on a 52 MB .bson; 64 KiB chunks die young and stay flat).
const READ_CHUNK = 1 << 16;

/** The decompressed bytes of a file, chunk by chunk, with backpressure (async iteration pulls). */
export async function openByteStream(file: string, signal?: AbortSignal): Promise<AsyncIterable<Buffer>> {
  const raw = createReadStream(file, { highWaterMark: READ_CHUNK, signal });
  let gzipped: boolean;
  try {
    gzipped = await isGzipFile(file);
  } catch (cause) {
    raw.destroy();
    throw unreadable(file, 0, cause);
  }
  if (!gzipped) return raw;
  const out = new PassThrough({ highWaterMark: READ_CHUNK });
  // The reader iterates `out`; pipeline destroys it with any error of the file or of gunzip (so the
  // iteration throws), and destroying `out` (a reader that stops early) tears down the other two.
  pipeline(raw, createGunzip({ chunkSize: READ_CHUNK }), out).catch(() => undefined);
  return out;
}

/**
 * Why a file's bytes could not be read. A gzipped file starts with gzip's magic bytes (openByteStream
 * checks), so a gzip header that gunzip refuses is not the first: bytes follow the end of the gzip
 * stream and start no other. That case has no offset to give: gunzip drops what the write that met
 * them decompressed (the stream's last documents), so "byte offset 0" would point at nothing.
 */
function unreadable(file: string, offset: number, cause: unknown): SourceError {
  const { code, message } = cause as { code?: unknown; message?: unknown };
  if (code === 'Z_DATA_ERROR' && message === 'incorrect header check') {
    return new SourceError('dump_unreadable', `cannot read ${file}: its gzip stream is followed by bytes that are not gzip`, {
      context: { file },
      hint: `\`gzip -t\` calls them trailing garbage: check where the file came from, take the dump again, or keep the stream alone with \`gzip -dc\` into a .bson file`,
      cause,
    });
  }
  if (systemCode(cause)) return systemUnreadable(file, cause);
  return new SourceError('dump_unreadable', `cannot read ${file} at byte offset ${offset}: ${String(message ?? cause)}`, {
    context: { file, offset },
    hint: 'the file is damaged or not a (gzipped) BSON file',
    cause,
  });
}

/** The system refused the read (no permission, an I/O error): the file is not damaged, the hint says so. */
function systemUnreadable(file: string, cause: unknown): SourceError {
  const hint = isPermissionDenied(cause)
    ? 'this user may not read it: mongodump may have written it as another user; fix its permissions (chmod, chown) or run etl as a user who may read it'
    : systemCode(cause) === 'EISDIR'
      ? 'a folder stands where a dump file was expected: point --source at the dump folder or the --archive file'
      : 'the system could not read it: check the disk (dmesg) and the file, or take the dump again';
  return new SourceError('dump_unreadable', `cannot read ${file}: ${systemWords(cause)}`, { context: { file }, hint, cause });
}

/**
 * A pull reader over a byte stream: `ensure(n)` makes n bytes available (false at a clean end),
 * `take(n)` hands them out. Chunks are queued as they come; a document inside one chunk is a view of
 * it (no copy), and only a document spanning chunks is copied, once, into a buffer of its own size.
 */
export class ByteReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private readonly chunks: Buffer[] = [];
  /** Read position inside chunks[0]. */
  private pos = 0;
  private buffered = 0;
  private consumed = 0;
  private ended = false;
  readonly file: string;

  constructor(file: string, source: AsyncIterable<Buffer>) {
    this.file = file;
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Offset of the next unread byte. */
  get offset(): number {
    return this.consumed;
  }

  available(): number {
    return this.buffered;
  }

  async ensure(n: number): Promise<boolean> {
    while (this.buffered < n && !this.ended) {
      let next: IteratorResult<Buffer>;
      try {
        next = await this.iterator.next();
      } catch (cause) {
        throw unreadable(this.file, this.consumed + this.buffered, cause);
      }
      if (next.done) {
        this.ended = true;
        break;
      }
      if (next.value.length === 0) continue;
      this.chunks.push(next.value);
      this.buffered += next.value.length;
    }
    return this.buffered >= n;
  }

  /** True when the stream is exhausted. */
  async atEnd(): Promise<boolean> {
    return !(await this.ensure(1));
  }

  /** The next 4 bytes as a little-endian int32 (ensure(4) first). */
  peekInt32(): number {
    const head = this.chunks[0]!;
    if (head.length - this.pos >= 4) return head.readInt32LE(this.pos);
    const bytes = Buffer.alloc(4);
    let filled = 0;
    for (let i = 0, at = this.pos; filled < 4; i += 1, at = 0) {
      const c = this.chunks[i]!;
      const n = Math.min(4 - filled, c.length - at);
      c.copy(bytes, filled, at, at + n);
      filled += n;
    }
    return bytes.readInt32LE(0);
  }

  take(n: number): Buffer {
    const head = this.chunks[0]!;
    let out: Buffer;
    if (head.length - this.pos >= n) {
      out = head.subarray(this.pos, this.pos + n);
      this.pos += n;
      if (this.pos === head.length) {
        this.chunks.shift();
        this.pos = 0;
      }
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[0]!;
        const k = Math.min(n - filled, c.length - this.pos);
        c.copy(out, filled, this.pos, this.pos + k);
        filled += k;
        this.pos += k;
        if (this.pos === c.length) {
          this.chunks.shift();
          this.pos = 0;
        }
      }
    }
    this.buffered -= n;
    this.consumed += n;
    return out;
  }

  async close(): Promise<void> {
    await this.iterator.return?.();
  }
}

/** A document's bytes and where it started. */
export interface RawDocument {
  readonly bytes: Buffer;
  readonly offset: number;
}

export function corrupt(file: string, offset: number, what: string): SourceError {
  return new SourceError('dump_corrupt', `${file}: ${what} at byte offset ${offset}`, {
    context: { file, offset },
    hint: 'the dump is damaged or truncated: take a new mongodump, or restore what you can with bsondump',
  });
}

/** Checks an announced length; throws SourceError naming file and offset. */
function checkedLength(reader: ByteReader, offset: number): number {
  const length = reader.peekInt32();
  if (length < MIN_DOCUMENT_BYTES || length > MAX_DOCUMENT_BYTES) throw corrupt(reader.file, offset, `invalid document length ${length}`);
  return length;
}

function takeDocument(reader: ByteReader, offset: number, length: number): RawDocument {
  const bytes = reader.take(length);
  if (bytes[length - 1] !== 0) throw corrupt(reader.file, offset, 'document does not end with a 0x00 byte');
  return { bytes, offset };
}

/** Reads one BSON document; null at a clean end of stream. Throws SourceError naming file and offset. */
export async function readRawDocument(reader: ByteReader): Promise<RawDocument | null> {
  const offset = reader.offset;
  if (!(await reader.ensure(4))) {
    if (reader.available() === 0) return null;
    throw corrupt(reader.file, offset, `truncated document length (${reader.available()} stray bytes)`);
  }
  const length = checkedLength(reader, offset);
  if (!(await reader.ensure(length))) {
    throw corrupt(reader.file, offset, `truncated document (${length} bytes announced, ${reader.available()} present)`);
  }
  return takeDocument(reader, offset, length);
}

/**
 * The next document when it is whole in what the reader has buffered, without waiting; null when
 * more bytes are needed (or, with `stopAt`, when the next 4 bytes are that marker: an archive's
 * segment terminator).
 */
export function readBufferedDocument(reader: ByteReader, stopAt?: number): RawDocument | null {
  if (reader.available() < 4) return null;
  if (stopAt !== undefined && reader.peekInt32() === stopAt) return null;
  const offset = reader.offset;
  const length = checkedLength(reader, offset);
  if (reader.available() < length) return null;
  return takeDocument(reader, offset, length);
}

/** Documents handed over at once: those already buffered after one awaited read (a promise per batch, not per document). */
export const BATCH_DOCUMENTS = 1024;

/** Every document of a `.bson` / `.bson.gz` file, in file order, in batches. */
export async function* readBsonBatches(file: string, signal?: AbortSignal): AsyncGenerator<RawDocument[]> {
  const reader = new ByteReader(file, await openByteStream(file, signal));
  try {
    for (;;) {
      const first = await readRawDocument(reader);
      if (first === null) return;
      const batch = [first];
      while (batch.length < BATCH_DOCUMENTS) {
        const next = readBufferedDocument(reader);
        if (next === null) break;
        batch.push(next);
      }
      yield batch;
    }
  } finally {
    await reader.close();
  }
}
