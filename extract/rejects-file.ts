// extract/<collection>.rejects.ndjson: one line per document extract could not stage, with where it
// was (dump file and byte offset, or position in the live read), its `_id` when it has one and the
// reason. Created at the first reject only, so a clean collection stages no such file.
import { once } from 'node:events';
import { EJSON, ObjectId, type Document } from 'bson';
import { AtomicFileSink, type FileFigures } from '../staging/atomic-file.ts';
import { shortText } from '../staging/short-text.ts';

/** Why extract could not stage a document (the `reason` of extract/<collection>.rejects.ndjson). */
export type ExtractRejectReason = 'missing_id' | 'too_deep' | 'invalid_utf8' | 'invalid_id' | 'invalid_bson' | 'duplicate_field';

export interface ExtractReject {
  readonly collection: string;
  readonly id: unknown;
  /** The dump file read (null: the live server). */
  readonly file: string | null;
  /** Byte offset of the document in the (decompressed) dump file; null for the live server. */
  readonly offset: number | null;
  /** 1-based position of the document in the read (dump order, or the live cursor's _id order). */
  readonly position: number;
  readonly reason: ExtractRejectReason;
  readonly detail: string;
  /** The start of the document's staged text, when it could be written (200 characters). */
  readonly value: string | null;
}

const VALUE_CHARS = 200;

/** An `_id` already written as canonical Extended JSON (one bson would decode unfaithfully: a Date beyond JavaScript). */
export class IdText {
  constructor(readonly text: string) {}
}

/** `_id` as the transform rejects files write it: 24 hex characters for an ObjectId, else canonical Extended JSON; null when absent. */
function idText(id: unknown): string | null {
  if (id === undefined) return null;
  if (id instanceof IdText) return id.text;
  if (id instanceof ObjectId) return id.toHexString();
  try {
    return EJSON.stringify({ v: id } as Document, { relaxed: false }).slice(5, -1);
  } catch {
    return String(id);
  }
}

export function shortValue(text: string): string {
  return shortText(text, VALUE_CHARS);
}

export class ExtractRejectsFile {
  private sink: AtomicFileSink | null = null;
  private count = 0;

  constructor(readonly path: string) {}

  get rejected(): number {
    return this.count;
  }

  async write(r: ExtractReject): Promise<void> {
    this.sink ??= new AtomicFileSink(this.path);
    const line = JSON.stringify({
      collection: r.collection,
      _id: idText(r.id),
      file: r.file,
      offset: r.offset,
      position: r.position,
      reason: r.reason,
      detail: r.detail,
      value: r.value,
    });
    this.count += 1;
    if (!this.sink.write(`${line}\n`)) await once(this.sink, 'drain');
  }

  /** Renames the file into place; null when nothing was rejected (no file). */
  async commit(): Promise<FileFigures | null> {
    const sink = this.sink;
    if (!sink) return null;
    await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
    return sink.commit();
  }

  async discard(): Promise<void> {
    await this.sink?.discard();
  }
}
