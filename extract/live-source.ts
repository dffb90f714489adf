// Reads one collection from the live server: one cursor sorted by _id, projected, batched, raw BSON
// decoded here for staging (decode-document.ts, the same decoding as dumps). When the cursor dies
// mid-way (network drop, server restart), a new cursor resumes after the last _id handed out, so
// nothing is skipped and nothing is read twice.
//
// "After" is in the server's order, which sorts by BSON type first (numbers, strings, documents,
// ObjectIds, booleans, dates…) and by value within a type. `{_id: {$gt: last}}` only matches values
// of last's own type, so the resume condition also takes every type sorted after it (`$type`).
import type { Db, Document } from 'mongodb';
import { Decimal128, Double, Int32 } from 'bson';
import { MongoServerError } from 'mongodb';
import { mongoGoneHint, mongoWentAway } from '../connect/mongo.ts';
import { SourceError } from '../errors/etl-error.ts';
import { redactText } from '../errors/redact.ts';
import { CORE_TYPE_ALIASES, rank, typeAliasesAfter } from './bson-order.ts';
import { asBuffer, topLevelId } from './bson-elements.ts';
import type { SourceDocument } from './collection-writer.ts';

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


/** Server error code of a query the server does not accept (an unknown `$type` alias on FerretDB). */
const BAD_VALUE = 2;

function isNaNumber(v: unknown): boolean {
  if (typeof v === 'number') return Number.isNaN(v);
  if (v instanceof Double || v instanceof Int32) return Number.isNaN(v.valueOf());
  if (v instanceof Decimal128) return v.toString() === 'NaN';
  return false;
}

/**
 * Every `_id` the server sorts after `last`: the rest of last's type (`$gt`; NaN sorts before every
 * other number) and every later type. `known` limits the `$type` aliases to those the server knows
 * (null: all of them).
 */
export function resumeCondition(last: unknown, known: ReadonlySet<string> | null): Document {
  const parts: Document[] = [];
  const r = rank(last);
  // MinKey, null and MaxKey have no "rest": a collection holds one _id of each at most.
  if (r !== 1 && r !== 2 && r !== 14) {
    if (isNaNumber(last)) parts.push({ _id: { $gte: -Infinity } });
    else parts.push({ _id: { $gt: last } });
  }
  const later = typeAliasesAfter(last, known);
  if (later.length > 0) parts.push({ _id: { $type: later } });
  if (parts.length === 0) return { _id: { $in: [] } };
  return parts.length === 1 ? parts[0]! : { $or: parts };
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

function readFailure(o: LiveReadOptions, error: unknown, attempt: number): SourceError {
  const reason = redactText(error instanceof Error ? error.message : String(error), o.secrets);
  return new SourceError(
    mongoWentAway(error) ? 'mongo_connection_lost' : 'mongo_read_failed',
    `reading ${o.collection} failed${attempt ? ` after ${attempt} reconnection attempts` : ''}: ${reason}`,
    { context: { collection: o.collection }, hint: mongoWentAway(error) ? mongoGoneHint('extract') : undefined, cause: error },
  );
}

export async function* readLiveCollection(o: LiveReadOptions): AsyncGenerator<SourceDocument[]> {
  // The last document handed out; its _id is decoded only when a cursor must be resumed after it.
  let last: Buffer | null = null;
  let lastId: unknown = undefined;
  let resumed = false;
  let attempt = 0;
  let position = 0;
  // Every $type alias first; the ones every server knows after a server refuses one.
  let known: ReadonlySet<string> | null = null;
  for (;;) {
    o.signal?.throwIfAborted();
    const query = resumed ? { $and: [o.query, resumeCondition(lastId, known)] } : o.query;
    const cursor = o.db.collection(o.collection).find(query, {
      ...(o.projection ? { projection: o.projection } : {}),
      sort: { _id: 1 },
      batchSize: o.batchSize,
      raw: true,
    });
    try {
      for (;;) {
        // One awaited document, then the rest of the server's batch at once: a promise per batch.
        const first = (await cursor.next()) as Uint8Array | null;
        if (first === null) return;
        const raws = [first, ...(cursor.readBufferedDocuments() as unknown as Uint8Array[])];
        const batch = raws.map((raw): SourceDocument => ({ bytes: asBuffer(raw), file: null, offset: null, position: (position += 1) }));
        last = batch[batch.length - 1]!.bytes;
        attempt = 0;
        yield batch;
        o.signal?.throwIfAborted();
      }
    } catch (error) {
      if (o.signal?.aborted) throw o.signal.reason;
      const failedResumed = resumed;
      if (last !== null) {
        const id = topLevelId(last);
        if (id !== undefined) {
          lastId = id;
          resumed = true;
        }
        last = null;
      }
      if (failedResumed && known === null && error instanceof MongoServerError && error.code === BAD_VALUE) {
        known = CORE_TYPE_ALIASES;
        continue;
      }
      if (!mongoWentAway(error) || attempt >= o.retry.maxRetries) throw readFailure(o, error, attempt);
      attempt += 1;
      const delayMs = Math.min(o.retry.maxDelayMs, o.retry.baseDelayMs * 2 ** (attempt - 1));
      o.onRetry?.({ attempt, delayMs, error: redactText(error instanceof Error ? error.message : String(error), o.secrets), resumeAfter: lastId });
      await sleep(delayMs, o.signal);
    } finally {
      await cursor.close().catch(() => undefined);
    }
  }
}
