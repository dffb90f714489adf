// The two kinds of source behind one interface: the live server (filter, projection and order done
// by the server) and a mongodump output (done here, in collection-writer).
import type { Document } from 'bson';
import { describeMongo, type MongoConfig } from '../connect/config.ts';
import { connectMongo, type MongoConnection } from '../connect/mongo.ts';
import { redactText } from '../errors/redact.ts';
import { SourceError } from '../errors/etl-error.ts';
import type { ExtractSource } from './options.ts';
import { readBsonBatches, type RawDocument } from './bson-reader.ts';
import type { SourceDocument } from './collection-writer.ts';
import { readArchiveBatches } from './dump-archive.ts';
import { resolveDumpLayout, type DumpLayout } from './dump-layout.ts';
import { readLiveCollection, type RetryPolicy } from './live-source.ts';

export interface ReadRequest {
  readonly collection: string;
  readonly query: Document;
  /** Top-level fields to keep (always includes _id). */
  readonly fields: readonly string[];
  readonly batchSize: number;
  readonly signal?: AbortSignal;
  onRetry?(event: { attempt: number; delayMs: number; error: string }): void;
}

export interface SourceSession {
  readonly kind: 'mongodb' | 'dump';
  /** Printable (no credentials). */
  readonly description: string;
  /** The server's clock when the session opened (live); null for a dump. */
  readonly serverClock: Date | null;
  /** Warnings found while opening (clock fallback…). */
  readonly warnings: readonly string[];
  /** True when filter, projection and _id order must be applied on our side. */
  readonly clientSide: boolean;
  hasCollection(collection: string): Promise<boolean>;
  /** Documents matching the query, projected (live), or every document in dump order (dump), in batches. */
  documents(request: ReadRequest): AsyncIterable<readonly SourceDocument[]>;
  /** How many documents the read will return, when cheap to know; null otherwise. */
  total(request: ReadRequest): Promise<number | null>;
  /** How many documents match the query, counted by the server (a scan); null for a dump. */
  count(request: ReadRequest): Promise<number | null>;
  close(): Promise<void>;
}

export async function openSource(source: ExtractSource, secrets: readonly string[], retry: RetryPolicy, signal?: AbortSignal): Promise<SourceSession> {
  return source.kind === 'mongodb' ? openLive(source.mongo, secrets, retry) : openDump(source.path, source.database ?? null, signal);
}

async function serverClock(conn: MongoConnection): Promise<Date | null> {
  // `hello` (isMaster on old servers) carries the server's localTime; FerretDB answers it too.
  for (const command of [{ hello: 1 }, { isMaster: 1 }]) {
    try {
      const reply = await conn.client.db('admin').command(command);
      if (reply.localTime instanceof Date) return reply.localTime;
    } catch {
      // Try the next form.
    }
  }
  return null;
}

/**
 * MongoDB answers estimatedDocumentCount from collection metadata; FerretDB scans the collection
 * for it (measured: 10.8 s for the 100k-document sample, a third of the extract), so the progress
 * total is asked of MongoDB only.
 */
async function estimatesAreCheap(conn: MongoConnection): Promise<boolean> {
  try {
    const info = await conn.client.db('admin').command({ buildInfo: 1 });
    return info.ferretdbVersion === undefined;
  } catch {
    return false;
  }
}

async function openLive(mongo: MongoConfig, secrets: readonly string[], retry: RetryPolicy): Promise<SourceSession> {
  const conn = await connectMongo(mongo, secrets);
  const description = describeMongo(mongo);
  try {
    await requireDatabase(conn, mongo.database, description, secrets);
    const clock = await serverClock(conn);
    const cheapEstimate = await estimatesAreCheap(conn);
    const warnings = clock ? [] : ['the server did not report its clock (hello.localTime): the next watermark uses this machine\'s clock'];
    return {
      kind: 'mongodb',
      description,
      serverClock: clock ?? new Date(),
      warnings,
      clientSide: false,
      async hasCollection(collection) {
        const found = await conn.db.listCollections({ name: collection }, { nameOnly: true }).toArray();
        return found.length > 0;
      },
      documents(request) {
        return liveDocuments(conn, request, retry, secrets);
      },
      async count(request) {
        return conn.db.collection(request.collection).countDocuments(request.query);
      },
      async total(request) {
        return cheapEstimate ? estimatedTotal(conn, request) : null;
      },
      close: () => conn.close(),
    };
  } catch (error) {
    await conn.close().catch(() => undefined);
    throw error;
  }
}

/**
 * MongoDB creates databases on first write, so a typo in the name reads as an empty database:
 * refuse it when the server can tell us which databases exist.
 */
async function requireDatabase(conn: MongoConnection, database: string, description: string, secrets: readonly string[]): Promise<void> {
  let names: string[] | null = null;
  try {
    const reply = await conn.client.db('admin').admin().listDatabases({ nameOnly: true, authorizedDatabases: true });
    names = reply.databases.map((d) => d.name);
  } catch {
    names = null; // not allowed to list: skip the check
  }
  if (names !== null && !names.includes(database)) {
    throw new SourceError('mongo_unknown_database', `database "${database}" does not exist on ${redactText(description, secrets)}`, {
      hint: `set MONGODB_DATABASE (or --mongo-db) to one of: ${names.filter((n) => !['admin', 'config', 'local'].includes(n)).join(', ') || '(none)'}`,
    });
  }
}

function liveDocuments(conn: MongoConnection, request: ReadRequest, retry: RetryPolicy, secrets: readonly string[]): AsyncIterable<readonly SourceDocument[]> {
  const projection: Record<string, 1> = {};
  for (const f of request.fields) projection[f] = 1;
  return readLiveCollection({
    db: conn.db,
    collection: request.collection,
    query: request.query,
    projection,
    batchSize: request.batchSize,
    retry,
    secrets,
    signal: request.signal,
    onRetry: request.onRetry,
  });
}

/** The server's metadata estimate of an unfiltered read (asked only where it is cheap); null otherwise. */
async function estimatedTotal(conn: MongoConnection, request: ReadRequest): Promise<number | null> {
  // Only unfiltered reads: a filtered countDocuments is a second scan of the collection
  // (measured on FerretDB: as long as a third of the extract).
  if (Object.keys(request.query).length > 0) return null;
  try {
    return await conn.db.collection(request.collection).estimatedDocumentCount({ maxTimeMS: 2_000 });
  } catch {
    return null;
  }
}

function describeDump(layout: DumpLayout): string {
  return `${layout.kind === 'archive' ? 'mongodump archive' : 'mongodump folder'} ${layout.path} (database ${layout.database})`;
}

async function openDump(dumpPath: string, database: string | null, signal?: AbortSignal): Promise<SourceSession> {
  const layout = await resolveDumpLayout(dumpPath, database, signal);
  return {
    kind: 'dump',
    description: describeDump(layout),
    serverClock: null,
    warnings: [],
    clientSide: true,
    async hasCollection(collection) {
      return layout.kind === 'archive' ? layout.collections.has(collection) : layout.files.has(collection);
    },
    documents(request) {
      if (layout.kind === 'archive') return located(layout.path, readArchiveBatches(layout.path, layout.database, request.collection, request.signal));
      const file = layout.files.get(request.collection)!;
      return located(file, readBsonBatches(file, request.signal));
    },
    async total() {
      return null;
    },
    async count() {
      return null;
    },
    async close() {},
  };
}

/** A dump's documents as they lie, with where each was read, in batches. */
async function* located(file: string, batches: AsyncIterable<RawDocument[]>): AsyncGenerator<SourceDocument[]> {
  let position = 0;
  for await (const batch of batches) {
    yield batch.map((raw) => ({ bytes: raw.bytes, file, offset: raw.offset, position: (position += 1) }));
  }
}
