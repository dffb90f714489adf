// Regression: the line numbers of load/<table>.rejects.ndjson on the initial-load fast path.
//
// The fast path COPYs straight into the empty table and numbers the refused rows by ctid, which is
// right only if the rows lie in file order. On PostgreSQL 17 a COPY into an empty table whose file
// predates the transaction (tables made by `etl schema`, then loaded) can put later rows into free
// space of earlier pages (a row too large for the current page leaves room a later small row
// takes), so rejects named the wrong CSV lines. This stages a large table of variable-width rows,
// some spanning several physical lines, with a few hundred missing references (reject and
// set_null) spread through the file; loads it on the fast path and on the ordinary path into tables
// created beforehand; and checks every rejects line against the staged CSV itself.
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { parse } from 'csv-parse';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { runLoad } from '../../load/index.ts';
import { ensureSchema } from '../../load/ledger.ts';
import { runPaths } from '../../staging/run-folder.ts';
import type { Cell } from '../../staging/csv.ts';
import { pipelineFromYaml } from '../harness/staged-run.ts';
import { stageRun } from './staged-run.ts';
import { postgresConfig, query } from './model-fixture.ts';
import { Rng } from '../../sample/prng.ts';

const servers = useServers({ mongo: false });

const OWNERS = 400;
const NOTES = 60_000;

// No base timestamps: an id fed by the document _id and the columns the test is about.
const PIPELINE = `tables:
  owners:
    columns:
      - name: id
        sql_type: VARCHAR
        primary_key: true
      - name: name
        sql_type: VARCHAR
        nullable: false
    explicit_mappings:
      _id: id
  notes:
    columns:
      - name: id
        sql_type: VARCHAR
        primary_key: true
      - name: owner_id
        sql_type: VARCHAR
        foreign_key: owners(id) # on_missing: reject
      - name: editor_id
        sql_type: VARCHAR
        foreign_key: owners(id)
        on_missing: set_null
      - name: body
        sql_type: TEXT
        nullable: false
    explicit_mappings:
      _id: id
`;

function model() {
  return pipelineFromYaml(PIPELINE);
}

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

const ownerId = (i: number): string => `o${String(i).padStart(4, '0')}`;

/**
 * Rows of very different widths (a few bytes up to ~1.9 kB, below the TOAST threshold so they stay
 * in the page), a tenth of them quoted over several lines. Missing references carry a value unique
 * to their row, so a line naming another row can never match by chance.
 */
async function* notes(): AsyncGenerator<Cell[]> {
  const rnd = random(20261125);
  const words = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'a,b', '"quoted"', 'x'];
  for (let i = 0; i < NOTES; i += 1) {
    const r = rnd();
    let owner: string | null = ownerId(Math.floor(rnd() * OWNERS));
    let editor: string | null = rnd() < 0.2 ? null : ownerId(Math.floor(rnd() * OWNERS));
    if (r < 0.005) owner = `lost-owner-${i}`; // ~300 rejected
    else if (r < 0.0075) editor = `lost-editor-${i}`; // ~150 set NULL
    else if (r < 0.008) {
      owner = `lost-owner-${i}`; // ~30 with both missing: refused, listed once (owner_id)
      editor = `lost-editor-${i}`;
    } else if (r < 0.0085) owner = null; // no owner at all: not a missing reference
    const size = rnd() < 0.3 ? 800 + Math.floor(rnd() * 1100) : Math.floor(rnd() * 120);
    let body = '';
    while (body.length < size) body += `${words[Math.floor(rnd() * words.length)]!} `;
    body = body.slice(0, size);
    if (rnd() < 0.1) {
      const breaks = 1 + Math.floor(rnd() * 4);
      for (let b = 0; b < breaks; b += 1) {
        const at = Math.floor(rnd() * (body.length + 1));
        body = `${body.slice(0, at)}\n${body.slice(at)}`;
      }
    }
    yield [`n${String(i).padStart(6, '0')}`, owner, editor, body];
  }
}

interface Record4 {
  readonly line: number;
  readonly id: string;
  readonly owner_id: string | null;
  readonly editor_id: string | null;
}

/**
 * Each data record of the staged CSV with the physical line it starts on (header = line 1), counted
 * from the raw text csv-parse read for each record (newlines inside quotes included).
 */
async function recordsOf(file: string): Promise<Record4[]> {
  const out: Record4[] = [];
  let line = 1;
  let header = true;
  await pipeline(
    createReadStream(file),
    parse({ raw: true, cast: (value, context) => (value === '' && !context.quoting ? null : value) }),
    new Writable({
      objectMode: true,
      write(chunk: { record: (string | null)[]; raw: string }, _e, cb) {
        const start = line;
        for (const ch of chunk.raw) if (ch === '\n') line += 1;
        if (header) header = false;
        else out.push({ line: start, id: chunk.record[0]!, owner_id: chunk.record[1] ?? null, editor_id: chunk.record[2] ?? null });
        cb();
      },
    }),
  );
  // Every newline of the file was counted: the file ends with one, so line = newlines + 1.
  const text = await readFile(file, 'utf8');
  let newlines = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) newlines += 1;
  assert.equal(line, newlines + 1, 'the records cover every physical line of the CSV');
  return out;
}

interface RejectLine {
  table: string;
  file: string;
  line: number;
  column: string;
  value: string | null;
  references: string;
  reason: string;
  action: string;
}

/** Creates the tables in their own, committed transaction, as `etl schema` would before a load. */
async function createTables(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    await ensureSchema(client, model());
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

async function loadOnce(t: { name: string; after(fn: () => unknown): void }, bulkRows: number): Promise<{ rejects: string; records: Record4[]; rejected: number; nulled: number; url: string; rewritten: boolean }> {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await mkdtemp(path.join(os.tmpdir(), 'etl-reject-lines-'));
  t.after(() => rm(staging, { recursive: true, force: true }));
  const m = model();
  const owners: Cell[][] = Array.from({ length: OWNERS }, (_, i) => [ownerId(i), `owner ${i}`]);
  const runId = await stageRun(staging, m, { owners: { rows: owners }, notes: { rows: notes } });
  await createTables(url);
  const filenode = async () => (await query<{ f: string }>(url, `SELECT pg_relation_filenode('notes')::text AS f`))[0]!.f;
  const before = await filenode();

  const report = await runLoad({ model: m, stagingDir: staging, postgres: postgresConfig(url), bulkRows });
  const paths = runPaths(staging, runId);
  const records = await recordsOf(paths.transformCsv('notes'));
  const r = report.tables.find((x) => x.table === 'notes')!;
  assert.equal(r.staged, NOTES);
  const rewritten = (await filenode()) !== before;
  return { rejects: await readFile(paths.loadRejects('notes'), 'utf8'), records, rejected: r.rejected, nulled: r.nulled, url, rewritten };
}

/** What the rejects file must hold, derived from the staged CSV alone. */
function expectedRejects(records: readonly Record4[]): RejectLine[] {
  const owner = (v: string | null) => v === null || /^o\d{4}$/.test(v);
  const out: RejectLine[] = [];
  for (const r of records) {
    const base = { table: 'notes', key: { id: r.id }, file: 'transform/notes.csv', line: r.line, references: 'owners(id)', reason: 'missing_reference' } as const;
    if (!owner(r.owner_id)) out.push({ ...base, column: 'owner_id', value: r.owner_id, action: 'reject' });
    else if (!owner(r.editor_id)) out.push({ ...base, column: 'editor_id', value: r.editor_id, action: 'set_null' });
  }
  return out;
}

function checkRejects(text: string, records: readonly Record4[]): RejectLine[] {
  const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as RejectLine);
  const byLine = new Map(records.map((r) => [r.line, r]));
  // Each line names the CSV line where a record starts, and that record holds the refused value.
  const wrong: string[] = [];
  for (const l of lines) {
    const rec = byLine.get(l.line);
    const held = rec ? (l.column === 'owner_id' ? rec.owner_id : l.column === 'editor_id' ? rec.editor_id : undefined) : undefined;
    if (held !== l.value) wrong.push(`line ${l.line} (${l.column}=${l.value}) holds ${rec ? `${rec.id} with ${l.column}=${String(held)}` : 'no record start'}`);
  }
  assert.equal(wrong.length, 0, `${wrong.length} of ${lines.length} rejects name the wrong line, e.g.:\n${wrong.slice(0, 5).join('\n')}`);
  assert.deepEqual(lines, expectedRejects(records));
  return lines;
}

test('rejects files name the CSV line of each refused row, on the fast path and the ordinary path alike', async (t) => {
  const fast = await loadOnce({ name: `${t.name} fast`, after: (fn) => t.after(fn) }, 1);
  const fastLines = checkRejects(fast.rejects, fast.records);

  const expected = expectedRejects(fast.records);
  const rejected = expected.filter((e) => e.action === 'reject').length;
  const nulled = expected.length - rejected;
  // The data has what the test is about: enough refused rows, spread to the end of a multi-line file.
  assert.ok(rejected >= 250 && nulled >= 100, `rejected ${rejected}, nulled ${nulled}`);
  assert.ok(fast.records.at(-1)!.line > NOTES + 1000, 'many records span several lines');
  assert.ok(expected.at(-1)!.line > fast.records.at(-1)!.line * 0.9, 'rejects reach the end of the file');
  assert.deepEqual([fast.rejected, fast.nulled], [rejected, nulled]);
  // The fast path rewrites the empty table (CLUSTER) before its COPY; the ordinary path never does.
  // This keeps the test honest about which path it exercised.
  assert.ok(fast.rewritten, 'bulkRows 1 took the fast path');

  const ordinary = await loadOnce({ name: `${t.name} ordinary`, after: (fn) => t.after(fn) }, Number.MAX_SAFE_INTEGER);
  checkRejects(ordinary.rejects, ordinary.records);
  assert.deepEqual([ordinary.rejected, ordinary.nulled], [rejected, nulled]);
  assert.ok(!ordinary.rewritten, 'a large bulkRows took the ordinary path');
  assert.equal(fast.rejects, ordinary.rejects, 'the two paths write byte-identical rejects files');

  // And the tables agree: refused rows absent, nulled ones loaded with editor_id NULL.
  for (const url of [fast.url, ordinary.url]) {
    const rows = await query<{ n: number; lost_editor: number; refused_present: number }>(
      url,
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE editor_id LIKE 'lost-%')::int AS lost_editor, ` +
        `count(*) FILTER (WHERE id = ANY($1))::int AS refused_present FROM notes`,
      [fastLines.filter((l) => l.action === 'reject').map((l) => fast.records.find((r) => r.line === l.line)!.id)],
    );
    assert.deepEqual(rows[0], { n: NOTES - rejected, lost_editor: 0, refused_present: 0 });
  }
});
