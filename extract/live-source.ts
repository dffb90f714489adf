// Reads one collection from the live server: one cursor sorted by _id, projected, batched, raw BSON
// decoded here with the staging read options (the same decoding as dumps). When the cursor dies
// mid-way (network drop, server restart), a new cursor resumes after the last _id handed out, so
// nothing is skipped and nothing is read twice.
import type { Db, Document } from 'mongodb';
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import { deserialize } from 'bson';
import { BSON_READ_OPTIONS } from '../staging/ndjson.ts';
import { SourceError } from '../model/errors.ts';
import { redactText } from '../connect/redact.ts';

/** Server error codes meaning "this cursor or connection is gone, try again", not "your query is wrong". */
const TRANSIENT_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  43, // CursorNotFound (killed, or timed out while we waited)
  89, // NetworkTimeout
  91, // ShutdownInProgress
  175, // QueryPlanKilled
  189, // PrimarySteppedDown
  237, // CursorKilled
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

export function isTransient(error: unknown): boolean {
  // MongoNetworkError covers the pool-cleared error too (a subclass).
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  if (error instanceof MongoServerError && typeof error.code === 'number') return TRANSIENT_CODES.has(error.code);
  return false;
}

export interface RetryPolicy {
  /** Attempts after a failure before giving up (the count restarts once documents flow again). */
  readonly maxRetries: number;
  /** First delay; doubled each attempt up to maxDelayMs. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ maxRetries: 8, baseDelayMs: 250, maxDelayMs: 5_000 });

export interface LiveReadOptions {
  readonly db: Db;
  readonly collection: string;
  readonly query: Document;
  readonly projection: Document | null;
  readonly batchSize: number;
  readonly retry: RetryPolicy;
  readonly secrets: readonly string[];
  readonly signal?: AbortSignal;
  /** Told about each reconnection (for the report and the progress display). */
  onRetry?(event: { attempt: number; delayMs: number; error: string; resumeAfter: unknown }): void;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function* readLiveCollection(o: LiveReadOptions): AsyncGenerator<Document> {
  let lastId: unknown = undefined;
  let resumed = false;
  let attempt = 0;
  for (;;) {
    o.signal?.throwIfAborted();
    // Resume strictly after the last _id handed out: the order is _id ascending, so `$gt` neither
    // skips a document nor repeats one.
    const query = resumed ? { $and: [o.query, { _id: { $gt: lastId } }] } : o.query;
    const cursor = o.db.collection(o.collection).find(query, {
      ...(o.projection ? { projection: o.projection } : {}),
      sort: { _id: 1 },
      batchSize: o.batchSize,
      raw: true,
    });
    try {
      for await (const raw of cursor as unknown as AsyncIterable<Uint8Array>) {
        const doc = deserialize(raw, BSON_READ_OPTIONS);
        lastId = doc._id;
        resumed = true;
        attempt = 0;
        yield doc;
        o.signal?.throwIfAborted();
      }
      return;
    } catch (error) {
      if (o.signal?.aborted) throw o.signal.reason;
      if (!isTransient(error) || attempt >= o.retry.maxRetries) {
        const reason = redactText(error instanceof Error ? error.message : String(error), o.secrets);
        throw new SourceError(
          isTransient(error) ? 'mongo_connection_lost' : 'mongo_read_failed',
          `reading ${o.collection} failed${attempt ? ` after ${attempt} reconnection attempts` : ''}: ${reason}`,
          { context: { collection: o.collection }, hint: isTransient(error) ? 'the server went away; run `etl extract` again once it is back' : undefined, cause: error },
        );
      }
      attempt += 1;
      const delayMs = Math.min(o.retry.maxDelayMs, o.retry.baseDelayMs * 2 ** (attempt - 1));
      o.onRetry?.({ attempt, delayMs, error: redactText(error instanceof Error ? error.message : String(error), o.secrets), resumeAfter: lastId });
      await sleep(delayMs, o.signal);
    } finally {
      await cursor.close().catch(() => undefined);
    }
  }
}
