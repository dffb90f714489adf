// Writes mongodump-shaped files for the extract tests: `<collection>.bson` (optionally gzipped) and
// `--archive` files (optionally gzipped, collections interleaved in segments like a parallel dump).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Binary, Decimal128, Double, Int32, Long, ObjectId, serialize as bsonSerialize, type Document } from 'bson';

/** A document's BSON bytes; a Buffer is taken as the bytes of a document already (hand-made or damaged BSON). */
const serialize = (d: Document | Buffer): Buffer => (Buffer.isBuffer(d) ? d : Buffer.from(bsonSerialize(d)));

export function bsonBytes(docs: readonly (Document | Buffer)[]): Buffer {
  return Buffer.concat(docs.map((d) => serialize(d)));
}

export async function writeDumpFolder(dir: string, collections: Record<string, readonly (Document | Buffer)[]>, options: { gzip?: boolean } = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, docs] of Object.entries(collections)) {
    const bytes = bsonBytes(docs);
    await writeFile(path.join(dir, `${name}.bson${options.gzip ? '.gz' : ''}`), options.gzip ? gzipSync(bytes) : bytes);
    await writeFile(path.join(dir, `${name}.metadata.json`), JSON.stringify({ options: {}, indexes: [], uuid: '', collectionName: name, type: 'collection' }));
  }
}

const TERMINATOR = Buffer.from([0xff, 0xff, 0xff, 0xff]);

/** An archive whose collections are interleaved in segments of `segment` documents (a Buffer: a document's bytes as they are). */
export function archiveBytes(db: string, collections: Record<string, readonly (Document | Buffer)[]>, options: { segment?: number; gzip?: boolean } = {}): Buffer {
  const segment = options.segment ?? 3;
  const parts: Buffer[] = [];
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(0x8199e26d);
  parts.push(magic, serialize({ concurrent_collections: new Int32(4), version: '0.1', server_version: '7.0.0', tool_version: '100.9.0' }));
  for (const name of Object.keys(collections)) {
    parts.push(serialize({ db, collection: name, metadata: JSON.stringify({ indexes: [], collectionName: name, type: 'collection' }), size: new Int32(0), type: 'collection' }));
  }
  parts.push(TERMINATOR);
  const cursors = Object.entries(collections).map(([name, docs]) => ({ name, docs, at: 0 }));
  const finished = new Set<string>();
  while (finished.size < cursors.length) {
    for (const c of cursors) {
      if (finished.has(c.name)) continue;
      if (c.at >= c.docs.length) {
        parts.push(serialize({ db, collection: c.name, EOF: true, CRC: Long.fromNumber(0) }), TERMINATOR);
        finished.add(c.name);
        continue;
      }
      parts.push(serialize({ db, collection: c.name, EOF: false, CRC: Long.fromNumber(0) }));
      for (const d of c.docs.slice(c.at, c.at + segment)) parts.push(serialize(d));
      parts.push(TERMINATOR);
      c.at += segment;
    }
  }
  const bytes = Buffer.concat(parts);
  return options.gzip ? gzipSync(bytes) : bytes;
}

/** ObjectIds in ascending order (fixed timestamp, counter in the last bytes). */
export function objectIdAt(n: number): ObjectId {
  return new ObjectId(`65f000000000000000${n.toString(16).padStart(6, '0')}`);
}

export const T0 = new Date('2024-03-01T00:00:00.000Z');
export const day = (n: number) => new Date(T0.getTime() + n * 86_400_000);

/** Users with every BSON type the live server also stores (no Decimal128: FerretDB refuses it). */
export function makeUsers(count: number, options: { decimal?: boolean } = {}): Document[] {
  const out: Document[] = [];
  for (let i = 0; i < count; i += 1) {
    const doc: Document = {
      _id: objectIdAt(i + 1),
      creation_date: day(i % 30),
      update_date: day((i % 30) + (i % 3)),
      email: `user${i}@example.org`,
      password: 'not projected',
      score: Long.fromString(`${9007199254740993n + BigInt(i)}`),
      ratio: new Double(i + 0.5),
      count: new Int32(i),
      whole: new Double(2),
      registered_events: [objectIdAt(1000 + (i % 5)), objectIdAt(1000 + ((i + 1) % 5))],
      nested: { a: new Int32(1), b: ['x', null, true] },
      avatar: new Binary(Buffer.from([0, 1, 2, 255]), 0),
    };
    if (options.decimal) doc.balance = Decimal128.fromString(`${i}.10`);
    out.push(doc);
  }
  return out;
}

export function makeRecipes(count: number): Document[] {
  return Array.from({ length: count }, (_, i) => ({
    _id: objectIdAt(5000 + i),
    __t: i % 2 === 0 ? 'menu' : 'recipe',
    name: `dish ${i}`,
    creation_date: day(i),
    update_date: day(i),
  }));
}

export function makeEvents(count: number): Document[] {
  return Array.from({ length: count }, (_, i) => ({ _id: objectIdAt(1000 + i), title: `event ${i}`, creation_date: day(0), update_date: day(0) }));
}

// ── Hand-made BSON, for what the bson package refuses to write (hostile-input tests) ─────────────

/** The bytes of one element `name: value`, as bson writes it (type, name, value). */
export function elementBytes(name: string, value: unknown): Buffer {
  return serialize({ [name]: value }).subarray(4, -1);
}

/** A document made of the given elements, in order. */
export function documentOf(elements: readonly Buffer[]): Buffer {
  const body = Buffer.concat([...elements, Buffer.from([0])]);
  const head = Buffer.alloc(4);
  head.writeInt32LE(body.length + 4);
  return Buffer.concat([head, body]);
}

/** A string element whose bytes are `bytes`, valid UTF-8 or not (ED A0 80: a lone surrogate). */
export function rawStringElement(name: string, bytes: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeInt32LE(bytes.length + 1);
  return Buffer.concat([Buffer.from([0x02]), Buffer.from(`${name}\0`), len, bytes, Buffer.from([0])]);
}

/** A Date element holding any int64 of milliseconds (beyond what a JavaScript Date holds too). */
export function rawDateElement(name: string, millis: bigint): Buffer {
  const v = Buffer.alloc(8);
  v.writeBigInt64LE(millis);
  return Buffer.concat([Buffer.from([0x09]), Buffer.from(`${name}\0`), v]);
}

/**
 * `name: {a: {a: … {}}}`: a chain of `depth` documents, the first at level 1 (a field of the
 * top-level document), the innermost, empty, at level `depth`. Written without recursion (bson's
 * serializer would overflow).
 */
export function nestedElement(name: string, depth: number): Buffer {
  const headers = Buffer.alloc(7 * (depth - 1));
  for (let k = 1; k < depth; k += 1) {
    const at = 7 * (k - 1);
    headers.writeInt32LE(5 + 8 * (depth - k), at);
    headers[at + 4] = 0x03;
    headers[at + 5] = 0x61; // "a"
    headers[at + 6] = 0;
  }
  return Buffer.concat([Buffer.from([0x03]), Buffer.from(`${name}\0`), headers, Buffer.from([5, 0, 0, 0, 0]), Buffer.alloc(depth - 1)]);
}
