// Stand-in for mongodump on the test "remote server" (the Debian repositories have no
// mongodb-database-tools): `fake-mongodump --archive --gzip --db=<db> --uri=<uri> [--tee=<file>]`
// reads every collection of <db> from the MongoDB-wire server at <uri> (FerretDB in the tests) and
// writes a gzipped mongodump archive to stdout, in the documented format: magic 0x8199e26d, header
// document, one metadata document per collection, terminator, then per collection a namespace
// header {db, collection, EOF:false, CRC:0}, its documents and a terminator, and an EOF header
// {EOF:true, CRC: CRC-64/ECMA of the documents} and a terminator. --tee also saves the gzipped bytes.
// Like mongodump (mongo-tools common/password), a URI with a user and no password makes it print
// "Enter password for mongo user:" on stderr and read the password from stdin up to a newline;
// --expect-password-sha256=<hex> then stands for the server's check (FerretDB accepts any password).
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { ConnectionString } from 'mongodb-connection-string-url';
import zlib from 'node:zlib';
import { Int32, Long, serialize } from 'bson';
import { MongoClient } from 'mongodb';

const TERMINATOR = Buffer.from([0xff, 0xff, 0xff, 0xff]);
const MAGIC = Buffer.from([0x6d, 0xe2, 0x99, 0x81]);

const ECMA_TABLE = (() => {
  const poly = 0xc96c5795d7870f42n;
  const table: bigint[] = [];
  for (let i = 0n; i < 256n; i++) {
    let crc = i;
    for (let j = 0; j < 8; j++) crc = crc & 1n ? (crc >> 1n) ^ poly : crc >> 1n;
    table.push(crc);
  }
  return table;
})();

/** Go's crc64.Update with the ECMA table (what mongodump's EOF header carries). */
function crc64(crc: bigint, bytes: Buffer): bigint {
  const mask = 0xffffffffffffffffn;
  let c = ~crc & mask;
  for (const b of bytes) c = ECMA_TABLE[Number((c ^ BigInt(b)) & 0xffn)]! ^ (c >> 8n);
  return ~c & mask;
}

function arg(name: string): string | undefined {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit?.slice(name.length + 3);
}

/** mongo-tools' readPassNonInteractively: bytes up to CR, LF, ETX, EOT or the end of stdin. */
async function readPasswordFromStdin(): Promise<string> {
  process.stderr.write('Enter password for mongo user:');
  const bytes: number[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    for (const b of chunk) {
      if (b === 10 || b === 13 || b === 3 || b === 4) return Buffer.from(bytes).toString('utf8');
      if (b !== 0) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The URI with the password mongodump would prompt for, checked against --expect-password-sha256. */
async function withPromptedPassword(uri: string): Promise<string> {
  const cs = new ConnectionString(uri);
  if (!cs.username || cs.password) return uri;
  const password = await readPasswordFromStdin();
  process.stderr.write('\n');
  const expected = arg('expect-password-sha256');
  if (expected && createHash('sha256').update(password).digest('hex') !== expected) {
    process.stderr.write(`Failed: can't create session: could not connect to server: auth error: sasl conversation error: unable to authenticate using mechanism "PLAIN": Authentication failed.\n`);
    process.exit(1);
  }
  cs.password = encodeURIComponent(password);
  return cs.toString();
}

async function main(): Promise<void> {
  const db = arg('db');
  const given = arg('uri');
  if (!process.argv.includes('--archive') || !process.argv.includes('--gzip') || !db || !given) {
    process.stderr.write('fake-mongodump: expected --archive --gzip --db=<db> --uri=<uri>\n');
    process.exit(2);
  }
  const uri = await withPromptedPassword(given!);
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 });
  await client.connect();
  try {
    const names = (await client.db(db).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
    const parts: Buffer[] = [MAGIC, Buffer.from(serialize({ concurrent_collections: new Int32(1), version: '0.1', server_version: '7.0.0', tool_version: 'etl-test-fake-mongodump' }))];
    const bodies: Buffer[] = [];
    for (const name of names) {
      const docs: Buffer[] = [];
      for await (const raw of client.db(db).collection(name).find({}, { raw: true, sort: { _id: 1 } })) docs.push(Buffer.from(raw as unknown as Uint8Array));
      const size = docs.reduce((n, d) => n + d.length, 0);
      const metadata = JSON.stringify({ indexes: [{ v: { $numberInt: '2' }, key: { _id: { $numberInt: '1' } }, name: '_id_' }], uuid: '', collectionName: name, type: 'collection' });
      parts.push(Buffer.from(serialize({ db, collection: name, metadata, size: new Int32(size), type: 'collection' })));
      if (docs.length) {
        bodies.push(Buffer.from(serialize({ db, collection: name, EOF: false, CRC: Long.fromNumber(0) })), ...docs, TERMINATOR);
      }
      let crc = 0n;
      for (const d of docs) crc = crc64(crc, d);
      bodies.push(Buffer.from(serialize({ db, collection: name, EOF: true, CRC: Long.fromBigInt(BigInt.asIntN(64, crc)) })), TERMINATOR);
      process.stderr.write(`done dumping ${db}.${name} (${docs.length} documents)\n`);
    }
    const gz = zlib.gzipSync(Buffer.concat([...parts, TERMINATOR, ...bodies]));
    const tee = arg('tee');
    if (tee) writeFileSync(tee, gz);
    await new Promise<void>((resolve, reject) => process.stdout.write(gz, (err) => (err ? reject(err) : resolve())));
  } finally {
    await client.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`fake-mongodump: ${(err as Error).message}\n`);
  process.exit(1);
});
