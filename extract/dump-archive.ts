// The mongodump `--archive` format (gzipped or not): magic number 0x8199e26d, a header document,
// one metadata document per collection, a terminator (0xFFFFFFFF), then segments — a namespace
// header {db, collection, EOF, CRC}, that namespace's documents, a terminator — from collections
// dumped concurrently, so one collection's documents may be spread over many segments.
import { deserialize, type Document } from 'bson';
import { BATCH_DOCUMENTS, ByteReader, corrupt, openByteStream, readBufferedDocument, readRawDocument, type RawDocument } from './bson-reader.ts';

const MAGIC = 0x8199e26d;
const TERMINATOR = -1;

export interface ArchiveNamespace {
  readonly db: string;
  readonly collection: string;
  /** `collection` or `view` (timeseries and others are read like collections). */
  readonly type: string;
}

export interface ArchiveHeader {
  readonly serverVersion: string | null;
  readonly toolVersion: string | null;
  readonly namespaces: readonly ArchiveNamespace[];
}

async function openArchive(file: string, signal?: AbortSignal): Promise<ByteReader> {
  const reader = new ByteReader(file, await openByteStream(file, signal));
  if (!(await reader.ensure(4)) || reader.peekInt32() >>> 0 !== MAGIC) {
    await reader.close();
    throw corrupt(file, 0, 'not a mongodump archive (magic number 0x8199e26d missing)');
  }
  reader.take(4);
  return reader;
}

function decodeControl(reader: ByteReader, raw: RawDocument): Document {
  try {
    return deserialize(raw.bytes);
  } catch (cause) {
    throw corrupt(reader.file, raw.offset, `invalid archive header document (${(cause as Error).message})`);
  }
}

/** Reads a document or the terminator; throws on a clean end (an archive never ends mid-section). */
async function readDocumentOrTerminator(reader: ByteReader, what: string): Promise<RawDocument | 'terminator'> {
  const offset = reader.offset;
  if (!(await reader.ensure(4))) throw corrupt(reader.file, offset, `archive truncated inside ${what}`);
  if (reader.peekInt32() === TERMINATOR) {
    reader.take(4);
    return 'terminator';
  }
  const raw = await readRawDocument(reader);
  if (raw === null) throw corrupt(reader.file, offset, `archive truncated inside ${what}`);
  return raw;
}

async function readPrelude(reader: ByteReader): Promise<ArchiveHeader> {
  const headerRaw = await readRawDocument(reader);
  if (headerRaw === null) throw corrupt(reader.file, reader.offset, 'archive truncated after the magic number');
  const header = decodeControl(reader, headerRaw);
  const namespaces: ArchiveNamespace[] = [];
  for (;;) {
    const next = await readDocumentOrTerminator(reader, 'the collection metadata');
    if (next === 'terminator') break;
    const meta = decodeControl(reader, next);
    let type = 'collection';
    if (typeof meta.type === 'string' && meta.type) type = meta.type;
    else if (typeof meta.metadata === 'string') {
      try {
        const parsed = JSON.parse(meta.metadata) as { type?: unknown };
        if (typeof parsed.type === 'string') type = parsed.type;
      } catch {
        // Metadata is informational here; an unreadable one does not stop the documents.
      }
    }
    namespaces.push({ db: String(meta.db), collection: String(meta.collection), type });
  }
  return {
    serverVersion: typeof header.server_version === 'string' ? header.server_version : null,
    toolVersion: typeof header.tool_version === 'string' ? header.tool_version : null,
    namespaces,
  };
}

/** The archive's header and the namespaces it declares (reads only the prelude). */
export async function readArchiveHeader(file: string, signal?: AbortSignal): Promise<ArchiveHeader> {
  const reader = await openArchive(file, signal);
  try {
    return await readPrelude(reader);
  } finally {
    await reader.close();
  }
}

/**
 * The documents of one namespace, in archive order, in batches (those buffered together). Other
 * namespaces' documents are skipped by length without being decoded, so reading one collection
 * costs one sequential pass.
 */
export async function* readArchiveBatches(file: string, db: string, collection: string, signal?: AbortSignal): AsyncGenerator<RawDocument[]> {
  const reader = await openArchive(file, signal);
  try {
    const namespaces = (await readPrelude(reader)).namespaces;
    const declared = new Set(namespaces.map((n) => `${n.db}.${n.collection}`));
    // mongodump ends each collection's data with a segment whose header says EOF (a view has no data):
    // an archive cut between two segments ends cleanly, and only that missing segment tells that the
    // collection is not whole.
    const own = namespaces.find((n) => n.db === db && n.collection === collection);
    let ended = own === undefined || own.type === 'view';
    for (;;) {
      const offset = reader.offset;
      const headerRaw = (await reader.atEnd()) ? null : await readRawDocument(reader);
      if (headerRaw === null) {
        if (!ended) throw corrupt(file, offset, `archive truncated: ${db}.${collection} has no end-of-collection segment`);
        return;
      }
      const header = decodeControl(reader, headerRaw);
      if (typeof header.db !== 'string' || typeof header.collection !== 'string') {
        throw corrupt(file, offset, 'expected a namespace header {db, collection}');
      }
      // A damaged header would hand its documents to no collection, silently (mongorestore refuses it too).
      if (!declared.has(`${header.db}.${header.collection}`)) {
        throw corrupt(file, offset, `a segment of ${header.db}.${header.collection}, a namespace the archive's header does not declare`);
      }
      const mine = header.db === db && header.collection === collection;
      if (mine && header.EOF === true) ended = true;
      for (;;) {
        const next = await readDocumentOrTerminator(reader, `a segment of ${header.db}.${header.collection}`);
        if (next === 'terminator') break;
        const batch = [next];
        while (batch.length < BATCH_DOCUMENTS) {
          const more = readBufferedDocument(reader, TERMINATOR);
          if (more === null) break;
          batch.push(more);
        }
        if (mine) yield batch;
      }
    }
  } finally {
    await reader.close();
  }
}
