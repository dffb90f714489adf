// Orders a dump's documents by _id when the dump is not already in _id order, in bounded memory:
// sorted chunks are spilled to temp files, then merged k ways. Memory holds one chunk while filling
// and one record per spill file while merging, whatever the collection size.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { deserialize, serialize } from 'bson';
import { BSON_READ_OPTIONS } from '../staging/ndjson.ts';
import { compareBson } from './bson-order.ts';
import { ByteReader } from './bson-reader.ts';

export interface SortedEntry {
  readonly id: unknown;
  readonly line: string;
}

/** Default bytes of NDJSON text held before a chunk is spilled. */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;

export class IdSorter {
  private chunk: SortedEntry[] = [];
  private chunkBytes = 0;
  private readonly spills: string[] = [];
  private dir: string | null = null;
  private readonly maxChunkBytes: number;
  private readonly tmpParent: string;
  private readonly signal: AbortSignal | undefined;

  constructor(tmpParent: string, options: { maxChunkBytes?: number; signal?: AbortSignal } = {}) {
    this.tmpParent = tmpParent;
    this.maxChunkBytes = options.maxChunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.signal = options.signal;
  }

  /** Number of spill files written (0: everything fitted in one chunk). */
  get spillCount(): number {
    return this.spills.length;
  }

  async add(id: unknown, line: string): Promise<void> {
    this.chunk.push({ id, line });
    // Text length plus a rough per-entry overhead for the id object and the array slot.
    this.chunkBytes += line.length + 64;
    if (this.chunkBytes >= this.maxChunkBytes) await this.spill();
  }

  private sortChunk(): SortedEntry[] {
    // Array.prototype.sort is stable: documents with equal _ids keep their dump order.
    return this.chunk.sort((a, b) => compareBson(a.id, b.id));
  }

  private async spill(): Promise<void> {
    this.dir ??= await mkdtemp(path.join(this.tmpParent, '.sort-'));
    const file = path.join(this.dir, `chunk-${String(this.spills.length).padStart(6, '0')}.bin`);
    const entries = this.sortChunk();
    this.chunk = [];
    this.chunkBytes = 0;
    async function* records(): AsyncGenerator<Buffer> {
      for (const e of entries) {
        const key = serialize({ _id: e.id });
        const line = Buffer.from(e.line, 'utf8');
        const len = Buffer.alloc(4);
        len.writeUInt32LE(line.length);
        yield Buffer.concat([key, len, line]);
      }
    }
    await pipeline(Readable.from(records()), createWriteStream(file), { signal: this.signal });
    this.spills.push(file);
  }

  /** The entries in _id order. Call once, after the last add(). */
  async *sorted(): AsyncGenerator<SortedEntry> {
    if (this.spills.length === 0) {
      for (const e of this.sortChunk()) yield e;
      this.chunk = [];
      return;
    }
    if (this.chunk.length) await this.spill();
    const readers = this.spills.map((f) => new ByteReader(f, createReadStream(f, { highWaterMark: 1 << 16, signal: this.signal })));
    try {
      const heads: (SortedEntry | null)[] = await Promise.all(readers.map(readRecord));
      // A binary heap of reader indexes, ordered by their current record's _id (ties: lower index,
      // i.e. earlier chunk, which keeps the dump order of equal _ids).
      const heap: number[] = [];
      const less = (i: number, j: number) => {
        const c = compareBson(heads[i]!.id, heads[j]!.id);
        return c < 0 || (c === 0 && i < j);
      };
      const up = (k: number) => {
        while (k > 0) {
          const p = (k - 1) >> 1;
          if (!less(heap[k]!, heap[p]!)) break;
          [heap[k], heap[p]] = [heap[p]!, heap[k]!];
          k = p;
        }
      };
      const down = (k: number) => {
        for (;;) {
          const l = 2 * k + 1;
          const r = l + 1;
          let m = k;
          if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
          if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
          if (m === k) return;
          [heap[k], heap[m]] = [heap[m]!, heap[k]!];
          k = m;
        }
      };
      heads.forEach((h, i) => {
        if (h) {
          heap.push(i);
          up(heap.length - 1);
        }
      });
      while (heap.length) {
        const i = heap[0]!;
        yield heads[i]!;
        heads[i] = await readRecord(readers[i]!);
        if (heads[i] === null) {
          heap[0] = heap[heap.length - 1]!;
          heap.pop();
        }
        if (heap.length) down(0);
      }
    } finally {
      await Promise.all(readers.map((r) => r.close()));
    }
  }

  async cleanup(): Promise<void> {
    this.chunk = [];
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

async function readRecord(reader: ByteReader): Promise<SortedEntry | null> {
  if (!(await reader.ensure(4))) return null;
  const keyLength = reader.peekInt32();
  await reader.ensure(keyLength + 4);
  const key = deserialize(reader.take(keyLength), BSON_READ_OPTIONS);
  const lineLength = reader.take(4).readUInt32LE(0);
  await reader.ensure(lineLength);
  return { id: key._id, line: reader.take(lineLength).toString('utf8') };
}
