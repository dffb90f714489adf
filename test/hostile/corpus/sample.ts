// The clean sample every bad document is planted in: a pipeline with one column of each SQL type,
// a foreign key, a link table (explode), a rollup (dedupe) and a filtered table, and a few
// documents that all load. Documents may be BSON documents or raw BSON bytes (for what the bson
// package refuses to write: invalid UTF-8, no _id, 100,000 levels of nesting, impossible dates).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Int32, Long, ObjectId, serialize, type Document } from 'bson';

export const CORPUS_PIPELINE = `# hostile-input corpus: one column per SQL type
settings:
  timezone: Europe/Paris
tables:
  owners:
    include_base: true
    additional_columns:
      - name: name
        sql_type: VARCHAR(20)
        nullable: false
    export_order: 1
  things:
    include_base: true
    additional_columns:
      - { name: owner_id, sql_type: VARCHAR, foreign_key: owners(id) }
      - { name: code, sql_type: VARCHAR(255), nullable: false }
      - { name: label, sql_type: VARCHAR(10) }
      - { name: note, sql_type: TEXT }
      - { name: small, sql_type: SMALLINT }
      - { name: count, sql_type: INTEGER }
      - { name: big, sql_type: BIGINT }
      - { name: amount, sql_type: NUMERIC }
      - { name: price, sql_type: "NUMERIC(5,2)" }
      - { name: active, sql_type: BOOLEAN }
      - { name: seen_at, sql_type: TIMESTAMP }
      - { name: day, sql_type: DATE }
      - { name: extra, sql_type: JSONB }
      - { name: city, sql_type: VARCHAR(40) }
    additional_mappings:
      owner: owner_id
      address.city: city
    export_order: 2
  things_tags:
    mongo_collection: things
    strategy: explode
    parent_column: thing_id
    merge: delete_and_insert
    arrays:
      - field: tags
        item_column: owner_id
        item_id_key: owner
    columns:
      - { name: thing_id, sql_type: VARCHAR, nullable: false, foreign_key: things(id) }
      - { name: owner_id, sql_type: VARCHAR, nullable: false, foreign_key: owners(id) }
      - { name: created_at, sql_type: TIMESTAMP, nullable: false }
      - { name: updated_at, sql_type: TIMESTAMP, nullable: false }
    explicit_mappings:
      creation_date: created_at
      update_date: updated_at
    unique_constraints:
      - [thing_id, owner_id]
    export_order: 3
  daily:
    mongo_collection: visits
    strategy: dedupe
    dedupe_key: [owner_id, day]
    latest_by: updated_at
    columns:
      - { name: id, sql_type: SERIAL, primary_key: true }
      - { name: owner_id, sql_type: VARCHAR, nullable: false, foreign_key: owners(id) }
      - { name: day, sql_type: DATE, nullable: false }
      - { name: created_at, sql_type: TIMESTAMP, nullable: false }
      - { name: updated_at, sql_type: TIMESTAMP, nullable: false }
    explicit_mappings:
      owner: owner_id
      creation_date: created_at
      update_date: updated_at
    unique_constraints:
      - [owner_id, day]
    export_order: 3
  specials:
    mongo_collection: events
    filter: { __t: special }
    include_base: true
    additional_columns:
      - { name: title, sql_type: TEXT, nullable: false }
    export_order: 1
`;

/** One document as written to the dump: a document for `bson` to serialize, or its raw bytes. */
export type DumpDocument = Document | Buffer;
export type Sample = Record<string, DumpDocument[]>;

export const oid = (n: number) => new ObjectId(`65f0000000000000000000${n.toString(16).padStart(2, '0')}`);
/** The _id of the planted document (after every clean one, so the dump stays in _id order). */
export const BAD_ID = new ObjectId('65f0000000000000000000ff');
export const BAD_HEX = BAD_ID.toHexString();
export const at = (day: number, hour = 10) => new Date(Date.UTC(2024, 2, day, hour));

export const OWNERS = [1, 2, 3].map((n) => ({ _id: oid(n), name: `Owner ${n}`, creation_date: at(1), update_date: at(2) }));

/** A thing whose every column holds a good value. */
export function goodThing(id: ObjectId, extra: Document = {}): Document {
  return {
    _id: id,
    owner: oid(1),
    code: `T-${id.toHexString().slice(-4)}`,
    label: 'short',
    note: 'a note',
    small: new Int32(7),
    count: new Int32(1200),
    big: Long.fromString('9007199254740993'),
    amount: 3.25,
    price: 12.5,
    active: true,
    seen_at: at(5, 8),
    day: at(6, 23),
    extra: { a: new Int32(1) },
    address: { city: 'Lyon' },
    tags: [oid(1), { owner: oid(2), date: at(3) }],
    creation_date: at(3),
    update_date: at(4),
    ...extra,
  };
}

export function cleanSample(): Sample {
  return {
    owners: [...OWNERS],
    things: [10, 11, 12].map((n) => goodThing(oid(n))),
    visits: [
      { _id: oid(20), owner: oid(1), day: at(6, 23), creation_date: at(7), update_date: at(7) },
      { _id: oid(21), owner: oid(2), day: at(6, 23), creation_date: at(7), update_date: at(7) },
    ],
    events: [
      { _id: oid(30), __t: 'special', title: 'Kick-off', creation_date: at(1), update_date: at(1) },
      { _id: oid(31), __t: 'special', title: 'Review', creation_date: at(1), update_date: at(1) },
    ],
  };
}

/** Rows the clean sample gives per table (the planted document adds to these, or not). */
export const CLEAN_ROWS: Readonly<Record<string, number>> = { owners: 3, things: 3, things_tags: 6, daily: 2, specials: 2 };

export async function writeSampleDump(dir: string, sample: Sample): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, docs] of Object.entries(sample)) {
    await writeFile(path.join(dir, `${name}.bson`), Buffer.concat(docs.map((d) => (Buffer.isBuffer(d) ? d : Buffer.from(serialize(d))))));
    await writeFile(path.join(dir, `${name}.metadata.json`), JSON.stringify({ options: {}, indexes: [], collectionName: name, type: 'collection' }));
  }
}
