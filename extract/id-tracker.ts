// Follows the `_id`s as they are staged, from their bytes: a dump must ascend (or be sorted), equal
// neighbours are counted, and a live read's ascending order is part of the proof that an ids
// listing is complete. ObjectIds (nearly every _id) are compared as their 12 bytes; other types are
// decoded and compared in the server's order (bson-order.ts).
import type { FieldFacts } from '../staging/ndjson-writer.ts';
import { idOf } from './bson-elements.ts';
import { ObjectId } from 'bson';
import { compareBson } from './bson-order.ts';

const T_OBJECT_ID = 0x07;
const NONE = Symbol('no previous _id');

/** Raised when a dump turns out not to be in _id order: the caller re-reads it through the sorter. */
export class NotInIdOrder extends Error {
  override name = 'NotInIdOrder';
  constructor(readonly scanned: number) {
    super(`documents not in _id order (document ${scanned} of the dump)`);
  }
}

/** Compares 12 ObjectId bytes (big-endian: their byte order is their order). */
function compareOid(previous: Buffer, bytes: Buffer, at: number): number {
  for (let i = 0; i < 12; i += 1) {
    const d = previous[i]! - bytes[at + i]!;
    if (d !== 0) return d;
  }
  return 0;
}

export class IdTracker {
  duplicates = 0;
  ascending = true;
  private hasPrevious = false;
  private previousIsOid = false;
  private readonly previousOid = Buffer.alloc(12);
  private previous: unknown = undefined;
  private previousSorted: unknown = NONE;

  /** strict: a descent throws NotInIdOrder (a dump read in place); else it is only noted. */
  constructor(private readonly strict: boolean) {}

  /** The next staged `_id` (its bytes in the document `bytes`). */
  follow(bytes: Buffer, id: FieldFacts, position: number): void {
    const isOid = id.type === T_OBJECT_ID;
    // Decoded once (another type than ObjectId): compared with the previous one, then kept as it.
    const current = isOid ? undefined : idOf(bytes, id);
    if (this.hasPrevious) {
      const c =
        isOid && this.previousIsOid
          ? compareOid(this.previousOid, bytes, id.start)
          : compareBson(this.previousIsOid ? new ObjectId(Buffer.from(this.previousOid)) : this.previous, current ?? idOf(bytes, id));
      if (c > 0 && this.strict) throw new NotInIdOrder(position);
      if (c >= 0) this.ascending = false;
      if (c === 0) this.duplicates += 1;
    }
    this.hasPrevious = true;
    this.previousIsOid = isOid;
    if (isOid) bytes.copy(this.previousOid, 0, id.start, id.start + 12);
    else this.previous = current;
  }

  /** The sorted output of the external sort: only equal neighbours matter there. */
  followDecoded(id: unknown): void {
    if (this.previousSorted !== NONE && compareBson(this.previousSorted, id) === 0) this.duplicates += 1;
    this.previousSorted = id;
  }
}
