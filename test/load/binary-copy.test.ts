// load/binary-copy.ts, with PostgreSQL as the oracle: a staged CSV (written by transform's own
// converters and csvLine) COPYed as CSV into one table and through csvToBinaryCopy as binary into
// its twin must give the same rows, byte for byte and in file order (edge values, seeded random
// rows); the encoder's output does not depend on how its input is chunked; whatever it cannot write
// exactly (non-canonical texts, broken records) it refuses with NotEncodable, and no input at all
// (exotic files, seeded byte mutations) loads in binary a row the CSV COPY would not load.
// BINARY_COPY_SEED=<n> replays the randomized tests of a failed run (each prints its seed).
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import pg from 'pg';
import { binaryColumns, csvToBinaryCopy, NotEncodable, type BinaryColumn } from '../../load/binary-copy.ts';
import { ident } from '../../schema/sql.ts';
import { csvHeader } from '../../staging/csv-lines.ts';
import { useServers } from '../harness/index.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { ALL_KINDS, edgeRows, LONG_TEXT, randomRow, seededRandom, stagedCsv } from './binary-cells.ts';
import {
  assertFileOrderByCtid, assertNotEncodable, assertSameRows, chunksOf, copyBinary, copyCsv, encode, encodeError, errorText, neverDiffers, twinTables, type TwinColumn,
} from './binary-oracle.ts';
import { EXOTICS, REFUSALS, SPECTRUM } from './binary-refusals.ts';

const KINDS: readonly BinaryColumn[] = ALL_KINDS.map((c) => c.kind);

/** The seed of the randomized tests: BINARY_COPY_SEED replays a failed run. */
const SEED = Number(process.env.BINARY_COPY_SEED ?? Math.floor(Math.random() * 2 ** 31));

function withHeader(columns: readonly TwinColumn[], body: string | Buffer, header?: string): Buffer {
  return Buffer.concat([Buffer.from(header ?? csvHeader(columns.map((c) => c.name))), Buffer.from(body)]);
}

/** The file with one or two of its data bytes replaced, inserted or dropped, or cut short. */
function mutated(file: Buffer, random: () => number): Buffer {
  const SPECIAL = [0x2c, 0x22, 0x0d, 0x0a, 0x5c, 0x2e, 0x2d, 0x3a, 0x20, 0x30, 0x39, 0x54, 0x5a, 0x2b, 0x65, 0x00, 0xff, 0xc3];
  const headerEnd = file.indexOf(0x0a) + 1;
  let bytes = [...file];
  // Mostly one mutation, seldom a cut (a file cut short is refused whatever else it holds).
  for (let k = random() < 0.7 ? 1 : 2; k > 0; k -= 1) {
    const at = headerEnd + Math.floor(random() * (bytes.length - headerEnd));
    const byte = SPECIAL[Math.floor(random() * SPECIAL.length)]!;
    const what = random();
    if (what < 0.4) bytes[at] = byte;
    else if (what < 0.8) bytes.splice(at, 0, byte);
    else if (what < 0.95) bytes.splice(at, 1);
    else bytes = bytes.slice(0, at);
  }
  return Buffer.from(bytes);
}

const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const int64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigInt64BE(n); return b; };
const field = (bytes: Buffer) => Buffer.concat([int32(bytes.length), bytes]);
const SIGNATURE = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), int32(0), int32(0)]);

describe('csvToBinaryCopy, alone', () => {
  test('binaryColumns: an encoder a kind, varchar and text as text, null when one column has none', () => {
    assert.deepEqual(binaryColumns(ALL_KINDS.map((c) => c.type)), ['text', 'text', 'text', 'smallint', 'integer', 'bigint', 'boolean', 'timestamp', 'date', 'jsonb']);
    assert.equal(binaryColumns([{ kind: 'integer' }, { kind: 'numeric', precision: 10, scale: 2 }]), null);
    assert.equal(binaryColumns([{ kind: 'serial' }]), null);
    assert.deepEqual(binaryColumns([]), []);
  });

  test('the exact bytes of a small file: signature, one tuple a record (NULL as length -1), trailer', async () => {
    const columns: BinaryColumn[] = ['integer', 'text', 'boolean', 'smallint', 'bigint', 'date', 'timestamp', 'jsonb'];
    const csv = 'a,b,c,d,e,f,g,h\n1,"a,é",false,-1,-2,2000-01-02,1999-12-31 23:59:59.999,"{""a"": 1}"\n,,,,,,,\n';
    const expected = Buffer.concat([
      SIGNATURE,
      int16(8), field(int32(1)), field(Buffer.from('a,é')), field(Buffer.from([0])), field(int16(-1)), field(int64(-2n)),
      field(int32(1)), field(int64(-1000n)), field(Buffer.from('\x01{"a": 1}')),
      int16(8), ...Array.from({ length: 8 }, () => int32(-1)),
      int16(-1),
    ]);
    assert.deepEqual(await encode(columns, [Buffer.from(csv)]), expected);
    assert.deepEqual(await encode(columns, [Buffer.from('a,b,c,d,e,f,g,h\n')]), Buffer.concat([SIGNATURE, int16(-1)]), 'a header alone: no tuple');
  });

  test('any chunking gives the same bytes: one chunk, chunks of 1, 2, 3, 7 bytes, every cut in two, random cuts', async (t) => {
    const random = seededRandom(SEED);
    // Every cut in two, on a small file holding each tricky byte sequence: `""` inside quotes, a
    // quoted CRLF, 2-, 3- and 4-byte UTF-8, NULL beside '', a field ending right at a record's end.
    const small = stagedCsv(ALL_KINDS, [
      ['a""b', 'é😀', '\r\n,"', '-32768', '0', '-9223372036854775808', 'true', '1999-12-31 23:59:59.999', '0001-01-01', '{"k": "\\u00e9"}'],
      [null, '', 'x', null, '-1', null, 'false', null, '9999-12-31', null],
      ['', null, '日本', '1', null, '9223372036854775807', null, '2000-01-01 00:00:00.001', null, '[]'],
    ]);
    const smallWhole = await encode(KINDS, [small]);
    for (let cut = 1; cut < small.length; cut += 1) {
      const out = await encode(KINDS, [small.subarray(0, cut), small.subarray(cut)]);
      if (!out.equals(smallWhole)) assert.fail(`cut at byte ${cut} of ${small.length}: output differs`);
    }
    // Fixed and random sizes, on every edge row (texts cut to 200 characters) and random rows.
    const rows = [...edgeRows().map((r) => r.map((c) => (c !== null && c.length > 200 ? [...c].slice(0, 200).join('') : c))), ...Array.from({ length: 30 }, () => randomRow(random))];
    const bytes = stagedCsv(ALL_KINDS, rows);
    const whole = await encode(KINDS, [bytes]);
    assert.ok(whole.subarray(0, SIGNATURE.length).equals(SIGNATURE) && whole.length > SIGNATURE.length + 2);
    t.diagnostic(`seed ${SEED}, ${bytes.length} bytes in, ${whole.length} out`);
    for (const size of [1, 2, 3, 7, 64, 4096]) assert.deepEqual(await encode(KINDS, chunksOf(bytes, size)), whole, `chunks of ${size} (seed ${SEED})`);
    for (let run = 0; run < 30; run += 1) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; ) {
        const size = 1 + Math.floor(random() * (random() < 0.5 ? 5 : 300));
        chunks.push(bytes.subarray(i, i + size));
        i += size;
      }
      assert.deepEqual(await encode(KINDS, chunks), whole, `random cuts, run ${run} (seed ${SEED})`);
    }
  });

  test('it streams: tuples come out while the input is still open (memory does not grow with the file)', async () => {
    const encoder = csvToBinaryCopy(['integer', 'text']);
    let out = 0;
    let failed: unknown = null;
    encoder.on('data', (chunk: Buffer) => (out += chunk.length)).on('error', (err) => (failed = err));
    encoder.write(Buffer.from('id,name\n'));
    for (let i = 0; i < 2000 && failed === null; i += 1) encoder.write(Buffer.from(`${i},"row ${i}, quoted"\n`));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(failed, null);
    // 2000 tuples of 2 + (4 + 4) + (4 + ~14) bytes: most of them must be out before end().
    assert.ok(out > 2000 * 20, `${out} bytes out before the input ended`);
    const ended = new Promise((resolve, reject) => encoder.on('end', resolve).on('error', reject));
    encoder.end();
    await ended;
  });

  test('every refusal is NotEncodable in any chunking, and its canonical neighbour encodes', async () => {
    for (const r of REFUSALS) {
      const kinds = r.columns.map((c) => c.kind);
      const good = withHeader(r.columns, r.good);
      const bad = withHeader(r.columns, r.bad);
      for (const size of [bad.length, 1, 2, 3]) {
        assert.equal(await encodeError(kinds, chunksOf(good, size)), null, `${r.label}: the canonical records, chunks of ${size}`);
        assertNotEncodable(await encodeError(kinds, chunksOf(bad, size)), `${r.label}, chunks of ${size}`);
      }
    }
  });
});

describe('csvToBinaryCopy against PostgreSQL', () => {
  const servers = useServers({ mongo: false });

  /** A client on a fresh database, ended when the test ends (before the server stops). */
  async function connect(t: TestContext): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: await servers.postgres.createDatabase(t.name) });
    await client.connect();
    t.after(() => client.end());
    return client;
  }

  test("a staged file of edge values: the binary COPY gives the CSV COPY's rows, byte for byte", async (t) => {
    const client = await connect(t);
    const dir = await tempDir('binary-copy-', t);
    const file = path.join(dir, 'all_kinds.csv');
    const rows = edgeRows();
    await writeFile(file, stagedCsv(ALL_KINDS, rows));
    await client.query('BEGIN'); // as load: COPY into a file made in the transaction (ctid order = file order)
    const { csv, bin } = await twinTables(client, ALL_KINDS);
    assert.equal(await copyCsv(client, csv, ALL_KINDS, createReadStream(file)), rows.length);
    // Small reads, as if the file came in pieces: records, quoted LFs and UTF-8 sequences cut anywhere.
    assert.equal(await copyBinary(client, bin, ALL_KINDS, createReadStream(file, { highWaterMark: 997 })), rows.length);
    await client.query('COMMIT');
    assert.equal(await assertSameRows(client, csv, bin, ALL_KINDS, 'edge rows'), rows.length);
    await assertFileOrderByCtid(client, bin, 'edge rows');
    // The oracle sees what it should: the 100,000-character text, NULL apart from '', \. as text, the extremes.
    const seen = await client.query(
      `SELECT max(length(${ident('say "hi"')})) AS long, count(*) FILTER (WHERE v IS NULL)::int AS nulls,
              count(*) FILTER (WHERE v = '')::int AS empties, count(*) FILTER (WHERE v = $1)::int AS dots,
              min("at")::text AS min_at, max("day")::text AS max_day, max(big)::text AS max_big
       FROM ${ident(bin)}`,
      ['\\.'],
    );
    assert.deepEqual(seen.rows[0], {
      long: [...LONG_TEXT].length, nulls: 2, empties: 1, dots: 1, min_at: '0001-01-01 00:00:00', max_day: '9999-12-31', max_big: '9223372036854775807',
    });
  });

  test('one text column: an empty line is NULL, "" is \'\', "\\." is text', async (t) => {
    const client = await connect(t);
    const columns: TwinColumn[] = [{ name: 'only', ddl: 'TEXT', kind: 'text' }];
    const bytes = stagedCsv(columns, [[null], [''], ['\\.'], ['a'], [null], ['\n'], [null]]);
    const { csv, bin } = await twinTables(client, columns);
    await copyCsv(client, csv, columns, bytes);
    assert.equal(await copyBinary(client, bin, columns, bytes, 1), 7);
    await assertSameRows(client, csv, bin, columns, 'one text column');
  });

  test('a record opening with a text that starts with \\. (not exactly \\.) is data to the CSV COPY: encoded', async (t) => {
    // PostgreSQL's CSV COPY takes `\.` for its end-of-data marker only when a record is `\.` and
    // its line end (PostgreSQL 17 copyfromparse.c, "we only recognize \. alone on a line");
    // transform quotes the cell `\.`, and any cell holding a quote, CR or LF, so these records
    // are canonical: binary COPY may not refuse them.
    const client = await connect(t);
    const columns = ALL_KINDS.slice(0, 2);
    const bytes = stagedCsv(columns, [['\\.x', '\\.'], ['\\.\\.', 'a'], ['\\. ', null], ['\\.é', '\\.😀']]);
    assert.match(bytes.toString(), /\n\\\.x,"\\\."\n\\\.\\\.,a\n/);
    const { csv, bin } = await twinTables(client, columns);
    await copyCsv(client, csv, columns, bytes);
    assert.equal(await copyBinary(client, bin, columns, bytes), 4);
    await assertSameRows(client, csv, bin, columns, 'texts opening with \\.');
  });

  test(`seeded random rows: the binary COPY gives the CSV COPY's rows (seed ${SEED}; BINARY_COPY_SEED=${SEED} replays it)`, async (t) => {
    const client = await connect(t);
    const random = seededRandom(SEED);
    for (let round = 0; round < 3; round += 1) {
      const rows = Array.from({ length: 1000 }, () => randomRow(random));
      const bytes = stagedCsv(ALL_KINDS, rows);
      const chunk = 1 + Math.floor(random() * 8192);
      const label = `seed ${SEED}, round ${round}, chunks of ${chunk}`;
      // Tables and COPYs in one transaction, as load COPYs into a file made in its transaction:
      // then both formats append in file order, and ctid order is compared too.
      await client.query('BEGIN');
      const { csv, bin } = await twinTables(client, ALL_KINDS);
      await copyCsv(client, csv, ALL_KINDS, bytes);
      await copyBinary(client, bin, ALL_KINDS, bytes, chunk);
      await client.query('COMMIT');
      await assertSameRows(client, csv, bin, ALL_KINDS, label);
      await assertFileOrderByCtid(client, csv, label);
      await assertFileOrderByCtid(client, bin, label);
    }
    t.diagnostic(`seed ${SEED}`);
  });

  test('refusals: NotEncodable and nothing loaded; the CSV COPY accepts or rejects the same file as documented', async (t) => {
    const client = await connect(t);
    // (Each canonical neighbour's encoding is checked by the test without a server.)
    for (const r of REFUSALS.filter((x) => x.onServer !== false)) {
      const bad = await neverDiffers(client, r.columns, withHeader(r.columns, r.bad), r.label);
      assertNotEncodable(bad.bin, r.label);
      assert.equal('rows' in bad.csv ? 'accepts' : 'rejects', r.csv, `${r.label}: the CSV COPY (${errorText(bad.csv)})`);
    }
  });

  test("csv-spectrum's shapes: those transform could write load as the CSV COPY loads them, the others are refused", async (t) => {
    const client = await connect(t);
    for (const c of SPECTRUM) {
      const { csv, bin } = await neverDiffers(client, c.columns, Buffer.from(c.file), c.label);
      assert.ok('rows' in csv, `${c.label}: the CSV COPY failed (${errorText(csv)})`);
      if (c.expect === 'encodes') assert.ok('rows' in bin, `${c.label}: ${errorText(bin)}`);
      else assertNotEncodable(bin, c.label);
    }
  });

  test('inputs outside the dialect: refused, or loaded exactly as the CSV COPY loads them (never a value it would not)', async (t) => {
    const client = await connect(t);
    const refused: string[] = [];
    for (const e of EXOTICS) {
      const { csv, bin } = await neverDiffers(client, e.columns, withHeader(e.columns, e.body, e.header), e.label);
      if (!('error' in bin)) continue;
      refused.push(`${e.label}: ${errorText(bin)}; CSV: ${errorText(csv)}`);
    }
    t.diagnostic(`not loaded in binary:\n${refused.join('\n')}`);
  });

  test('seeded mutations of staged records (bytes replaced, inserted, dropped, cut): refused, or loaded exactly as the CSV COPY loads them', async (t) => {
    const client = await connect(t);
    const random = seededRandom(SEED ^ 0x5eed);
    const outcomes = { encoded: 0, refused: 0, bothFailed: 0 };
    for (let n = 0; n < 120; n += 1) {
      // One to three columns of ALL_KINDS (fewer bytes, so more mutants that still parse), two records.
      const picked = ALL_KINDS.map((_, i) => i).filter(() => random() < 0.25).slice(0, 3);
      const at = picked.length > 0 ? picked : [Math.floor(random() * ALL_KINDS.length)];
      const columns = at.map((i) => ALL_KINDS[i]!);
      const rows = [randomRow(random), randomRow(random)].map((row) => at.map((i) => row[i]!));
      const file = mutated(stagedCsv(columns, rows), random);
      const label = `mutation ${n} (seed ${SEED}), columns ${columns.map((c) => c.ddl).join(', ')}: ${JSON.stringify(file.toString('latin1').slice(0, 2000))}`;
      const { bin } = await neverDiffers(client, columns, file, label);
      if ('rows' in bin) outcomes.encoded += 1;
      else if (bin.error instanceof NotEncodable) outcomes.refused += 1;
      else outcomes.bothFailed += 1;
    }
    t.diagnostic(`seed ${SEED}: ${JSON.stringify(outcomes)}`);
  });
});
