// Schema evolution end to end, through the real CLI, FerretDB and PostgreSQL: a full load with the
// shipped pipeline.yaml, then copies of it edited as a user would — a new mapped column, a filter
// change on `menus`, a strategy change on a link table. After `etl schema --yes && etl run` with
// each copy, every table must equal what a full run of that copy gives in a fresh database (ordered
// checksums); the tables whose mapping did not change keep an incremental read.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MongoClient, ObjectId } from 'mongodb';
import { parseDocument, type YAMLMap, type YAMLSeq } from 'yaml';
import { useServers, type Servers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { etl } from '../harness/cli.ts';
// The shipped pipeline.yaml, which each test copies and edits.
import { contents, PIPELINE as SHIPPED, query } from '../mirror/harness.ts';
import { spellOutBase } from '../mirror/pipeline-edits.ts';

/** `etl run` of `mongo` into `db` with `pipeline`, staged in `<work>/<staging>`. */
function runWith(work: string, mongo: { url: string; name: string }, pipeline: string, db: string, staging: string, extra: string[] = []) {
  return etl(['run', '--json', '--source', mongo.url, '--mongo-db', mongo.name, '--staging', path.join(work, staging), '--pipeline', pipeline, '--database-url', db, ...extra]);
}

/** What each block starts from: a generated sample in FerretDB, loaded by a full run with the shipped pipeline.yaml. */
interface LoadedSample {
  readonly servers: Servers;
  /** The block's temporary folder (staging folders, edited pipeline files). */
  work: string;
  mongo: { url: string; name: string };
  /** The database the sample was loaded into, which the block's runs change. */
  incremental: string;
  /** `etl run` of the sample into `db` with `pipeline`, staged in `<work>/<staging>`. */
  run(pipeline: string, db: string, staging: string, extra?: string[]): ReturnType<typeof etl>;
}

/** Registers the describe block's before/after: the sample is made and loaded before its tests, its folder removed after. */
function loadedSample(label: string, scale: number): LoadedSample {
  const world: LoadedSample = {
    servers: useServers(),
    work: '',
    mongo: { url: '', name: '' },
    incremental: '',
    run: (pipeline, db, staging, extra = []) => runWith(world.work, world.mongo, pipeline, db, staging, extra),
  };
  before(async () => {
    world.work = await mkdtemp(path.join(os.tmpdir(), 'etl-evolution-'));
    world.mongo = await world.servers.mongo.newDatabase(label);
    world.incremental = await world.servers.postgres.createDatabase(`${label} incremental`);
    const sample = await etl(['sample', '--scale', String(scale), '--mongo-url', world.mongo.url, '--db', world.mongo.name]);
    assert.equal(sample.code, 0, sample.stderr);
    const first = await runWith(world.work, world.mongo, SHIPPED, world.incremental, 'incremental');
    assert.equal(first.code, 0, first.stderr);
  });
  after(() => rm(world.work, { recursive: true, force: true }));
  return world;
}

function edited(text: string, edits: readonly [string, string][]): string {
  for (const [from, to] of edits) {
    assert.ok(text.includes(from), `pipeline.yaml holds ${JSON.stringify(from)}`);
    text = text.replace(from, to);
  }
  return text;
}

const PHONE_COPY: [string, string][] = [
  ['      - name: phone\n        sql_type: VARCHAR(255)\n', '      - name: phone\n        sql_type: VARCHAR(255)\n      - name: phone_copy\n        sql_type: VARCHAR(255)\n'],
  ['      birthday: birthdate\n      company: company_id\n', '      birthday: birthdate\n      company: company_id\n      phone: phone_copy\n'],
];
const MENUS_AND_WEBINARS: [string, string][] = [['    filter: { __t: menu }', '    filter: { __t: { $in: [menu, webinar] } }']];
const SPECIFIC: [string, string][] = [['        constants: { type: specificity }', '        constants: { type: specific }']];

describe('a mapping change is applied and backfilled: the next run equals a full run', () => {
  let step = 0;

  const world = loadedSample('evolution', 1500);
  const { run } = world;

  /** Writes the shipped pipeline with `edits` as a new file. */
  async function pipeline(edits: readonly [string, string][]): Promise<string> {
    const file = path.join(world.work, `pipeline-${++step}.yaml`);
    await writeFile(file, edited(await readFile(SHIPPED, 'utf8'), edits));
    return file;
  }

  /** `etl schema --yes && etl run` with the pipeline; returns the run's report. */
  async function evolve(file: string) {
    const schema = await etl(['schema', '--yes', '--pipeline', file, '--database-url', world.incremental]);
    assert.equal(schema.code, 0, `${schema.stdout}\n${schema.stderr}`);
    const r = await run(file, world.incremental, 'incremental');
    assert.equal(r.code, 0, r.stderr);
    return { schema, report: JSON.parse(r.stdout) };
  }

  /** Every table of the incremental database equals a full run of the pipeline into a fresh one. */
  async function assertEqualsFullRun(file: string, label: string) {
    const fresh = await world.servers.postgres.createDatabase(`evolution full ${label}`);
    const full = await run(file, fresh, `full-${label}`);
    assert.equal(full.code, 0, full.stderr);
    const names = [...(await loadPipeline(file)).loadOrder];
    assert.deepEqual(await contents(world.incremental, names), await contents(fresh, names));
  }

  const fromOf = (report: { extract: { collections: { collection: string; watermark: { from: string | null } }[] } }) =>
    Object.fromEntries(report.extract.collections.map((c) => [c.collection, c.watermark.from]));

  test('a new mapped column: etl schema --yes && etl run exits 0, fills it for every row, the rest stays incremental', async () => {
    const p2 = await pipeline(PHONE_COPY);
    const { schema, report } = await evolve(p2);
    assert.match(schema.stdout, /applied {2}users: column "users"\."phone_copy" is missing: added/);
    const from = fromOf(report);
    assert.equal(from.users, null, 'users read in full: its mapping changed');
    for (const [collection, f] of Object.entries(from)) if (collection !== 'users') assert.notEqual(f, null, `${collection} stays incremental`);
    assert.match(report.extract.warnings.join('\n'), /users has a changed mapping in pipeline\.yaml since its last load: collection users is read in full \(mapping_changed\)/);
    const [counts] = await query<{ phone: number; copy: number }>(world.incremental, 'SELECT count(phone)::int AS phone, count(phone_copy)::int AS copy FROM users');
    assert.ok(counts!.phone > 0);
    assert.equal(counts!.copy, counts!.phone);
    await assertEqualsFullRun(p2, 'phone');

    // The fingerprint is stored: the run after is incremental everywhere.
    const again = await run(p2, world.incremental, 'incremental');
    assert.equal(again.code, 0, again.stderr);
    for (const [collection, f] of Object.entries(fromOf(JSON.parse(again.stdout)))) assert.notEqual(f, null, `${collection} incremental`);
  });

  test('a filter change on menus reads events in full and adds the rows the new filter takes', async () => {
    const p3 = await pipeline([...PHONE_COPY, ...MENUS_AND_WEBINARS]);
    const { report } = await evolve(p3);
    const from = fromOf(report);
    assert.equal(from.events, null);
    assert.notEqual(from.users, null, 'users unchanged since the last run: incremental');
    await assertEqualsFullRun(p3, 'menus');
  });

  test('a strategy change on a link table (an explode constant) replaces its links', async () => {
    const p4 = await pipeline([...PHONE_COPY, ...MENUS_AND_WEBINARS, ...SPECIFIC]);
    const { report } = await evolve(p4);
    assert.equal(fromOf(report).users, null);
    const [r] = await query<{ n: number }>(world.incremental, `SELECT count(*)::int AS n FROM users_targets WHERE type = 'specific'`);
    assert.ok(r!.n > 0);
    await assertEqualsFullRun(p4, 'targets');
  });

  test('after an upgrade from an etl without fingerprints, the same pipeline.yaml stays incremental and the fingerprints get recorded', async () => {
    const p4 = path.join(world.work, `pipeline-${step}.yaml`);
    await query(world.incremental, 'UPDATE etl_watermarks SET fingerprint = NULL');
    const r = await run(p4, world.incremental, 'incremental');
    assert.equal(r.code, 0, r.stderr);
    for (const [collection, f] of Object.entries(fromOf(JSON.parse(r.stdout)))) assert.notEqual(f, null, `${collection} incremental`);
    const [left] = await query<{ n: number }>(world.incremental, 'SELECT count(*)::int AS n FROM etl_watermarks WHERE fingerprint IS NULL');
    assert.equal(left!.n, 0);
  });

  test('a narrower filter on menus: rows the new filter no longer takes leave', async () => {
    const p5 = await pipeline([...PHONE_COPY, ...SPECIFIC]);
    await evolve(p5);
    await assertEqualsFullRun(p5, 'narrower');
  });

  test('a link table merged by upsert instead of delete-and-insert, with another constant: old links leave', async () => {
    const p6 = await pipeline([
      ...PHONE_COPY,
      ['    strategy: explode\n    parent_column: user_id\n    merge: delete_and_insert\n    arrays:\n      - field: targets', '    strategy: explode\n    parent_column: user_id\n    merge: upsert\n    arrays:\n      - field: targets'],
    ]);
    await evolve(p6);
    await assertEqualsFullRun(p6, 'upsert');
  });
});

// Found by test/mirror/evolution-randomized.test.ts: a narrowed type whose deleted rows other
// tables reference, and a table removed from pipeline.yaml whose foreign keys stayed.
describe('lossy changes and removed tables, applied by etl schema and a run, equal a full run', () => {
  const world = loadedSample('evolution lossy', 300);
  const { run } = world;

  const schema = (pipeline: string, extra: string[] = []) => etl(['schema', '--yes', '--pipeline', pipeline, '--database-url', world.incremental, ...extra]);

  /**
   * The shipped pipeline with the users.sso_id narrowed to VARCHAR(12) (UUIDs no longer fit), without
   * `drop` tables, with more `edits` and settings.
   */
  async function pipeline(name: string, drop: readonly string[] = [], edits: readonly [string, string][] = [], settings: Record<string, unknown> = {}): Promise<string> {
    const doc = parseDocument(edited(await readFile(SHIPPED, 'utf8'), [['      - name: sso_id\n        sql_type: VARCHAR(255)\n', '      - name: sso_id\n        sql_type: VARCHAR(12)\n'], ...edits]));
    for (const table of drop) assert.ok(doc.deleteIn(['tables', table]), `pipeline.yaml has ${table}`);
    for (const [key, value] of Object.entries(settings)) doc.setIn(['settings', key], value);
    const file = path.join(world.work, `${name}.yaml`);
    await writeFile(file, doc.toString());
    return file;
  }

  async function assertEqualsFullRun(file: string, label: string, extra: string[] = []) {
    const fresh = await world.servers.postgres.createDatabase(`evolution lossy full ${label}`);
    const full = await run(file, fresh, `full-${label}`, extra);
    assert.equal(full.code, 0, full.stderr);
    const names = [...(await loadPipeline(file)).loadOrder];
    assert.deepEqual(await contents(world.incremental, names), await contents(fresh, names));
  }

  test('a narrowed type whose rows to delete are referenced waits for a run, then applies; the result equals a full run', async () => {
    const p = await pipeline('narrow');
    const [referenced] = await query<{ n: number }>(world.incremental, `SELECT count(*)::int AS n FROM user_events WHERE user_id IN (SELECT id FROM users WHERE length(sso_id) > 12)`);
    assert.ok(referenced!.n > 0, 'rows of user_events reference users whose sso_id VARCHAR(12) cannot hold');

    const refused = await schema(p, ['--allow', 'type:users.sso_id']);
    assert.equal(refused.code, 1, refused.output);
    assert.match(refused.stdout, /refused {2}users: column "users"\."sso_id" is character varying\(255\), pipeline\.yaml says VARCHAR\(12\): not a widening/);
    assert.match(refused.stdout, /not applied yet: (\d+ row\(s\) of "\w+", )*\d+ row\(s\) of "user_events"(, \d+ row\(s\) of "\w+")* reference the rows it would delete: run `etl run` with this pipeline\.yaml first .*then `etl schema --allow type:users\.sso_id` again/);
    assert.doesNotMatch(refused.output, /\n\s+at /, 'no stack trace');
    const [before] = await query<{ type: string }>(world.incremental, `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'sso_id'`);
    assert.equal(before!.type, 'character varying(255)', 'nothing applied');

    const r = await run(p, world.incremental, 'incremental');
    assert.equal(r.code, 0, r.stderr);
    const applied = await schema(p, ['--allow', 'type:users.sso_id']);
    assert.equal(applied.code, 0, applied.output);
    const [after] = await query<{ type: string }>(world.incremental, `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'sso_id'`);
    assert.equal(after!.type, 'character varying(12)');
    await assertEqualsFullRun(p, 'narrow');
  });

  test('a table removed from pipeline.yaml no longer stops loads that delete rows it referenced; back again, it is read in full', async () => {
    const p = await pipeline('no-messages', ['messages']);
    const check = await etl(['schema', '--check', '--pipeline', p, '--database-url', world.incremental]);
    assert.equal(check.code, 1, `etl schema --check: the database differs (a table etl loaded is gone from pipeline.yaml)\n${check.output}`);
    assert.match(check.stdout, /messages: table "messages" is no longer in pipeline\.yaml/);
    // A user a message names is deleted in MongoDB: the load deletes the users row.
    const [sender] = await query<{ id: string }>(world.incremental, 'SELECT sender_id AS id FROM messages WHERE sender_id IS NOT NULL ORDER BY id LIMIT 1');
    const client = new MongoClient(world.mongo.url);
    try {
      await client.db(world.mongo.name).collection('users').deleteOne({ _id: new ObjectId(sender!.id) });
    } finally {
      await client.close();
    }
    // Before etl schema, the load cannot commit: its error says what to do.
    const before = await run(p, world.incremental, 'incremental', ['--propagate-deletes']);
    assert.equal(before.code, 1, before.output);
    const failure = JSON.parse(before.stdout) as { error: { code: string; hint: string } };
    assert.equal(failure.error.code, 'pg_23503');
    assert.match(failure.error.hint, /"messages" still references a row this load deletes: if "messages" is no longer in pipeline\.yaml, run `etl schema`/);

    const s = await schema(p);
    assert.equal(s.code, 0, s.output);
    const r = await run(p, world.incremental, 'incremental', ['--propagate-deletes']);
    assert.equal(r.code, 0, r.output);
    await assertEqualsFullRun(p, 'no-messages');
    assert.match(s.stdout, /applied {2}messages: table "messages" is no longer in pipeline\.yaml: etl stops loading it/);
    const fks = await query<{ n: number }>(world.incremental, `SELECT count(*)::int AS n FROM pg_constraint WHERE conrelid = 'messages'::regclass AND contype = 'f'`);
    assert.equal(fks[0]!.n, 0, 'its foreign keys are dropped');
    const kept = await query<{ n: number }>(world.incremental, 'SELECT count(*)::int AS n FROM messages');
    assert.ok(kept[0]!.n > 0, 'its rows stay');
    const marked = await query<{ fingerprint: string }>(world.incremental, `SELECT fingerprint FROM etl_watermarks WHERE table_name = 'messages'`);
    assert.deepEqual(marked, [{ fingerprint: 'retired' }], 'its mapping is marked retired');

    // Back in pipeline.yaml: read in full as a new table, so it equals a full run again.
    const back = await pipeline('messages-back');
    const again = await schema(back);
    assert.equal(again.code, 0, again.output);
    const r2 = await run(back, world.incremental, 'incremental', ['--propagate-deletes']);
    assert.equal(r2.code, 0, r2.output);
    const report = JSON.parse(r2.stdout) as { extract: { collections: { collection: string; watermark: { from: string | null } }[] } };
    assert.equal(report.extract.collections.find((c) => c.collection === 'messages')?.watermark.from, null, 'messages read in full');
    await assertEqualsFullRun(back, 'messages-back');
    // Its foreign keys waited for that run; etl schema adds them now.
    const keys = await schema(back);
    assert.equal(keys.code, 0, keys.output);
    const restored = await query<{ n: number }>(world.incremental, `SELECT count(*)::int AS n FROM pg_constraint WHERE conrelid = 'messages'::regclass AND contype = 'f'`);
    assert.equal(restored[0]!.n, 2, 'sender_id and receiver_id reference users again');
  });

  test('a new mapped column under a date_threshold set after the first load fills every row, older documents too', async () => {
    const p = await pipeline('threshold', [], PHONE_COPY, { date_threshold: '2022-01-01' });
    const s = await schema(p);
    assert.equal(s.code, 0, s.output);
    const r = await run(p, world.incremental, 'incremental', ['--propagate-deletes']);
    assert.equal(r.code, 0, r.output);
    const [counts] = await query<{ phone: number; copy: number; old: number }>(
      world.incremental,
      `SELECT count(phone)::int AS phone, count(phone_copy)::int AS copy, count(*) FILTER (WHERE updated_at < '2022-01-01')::int AS old FROM users`,
    );
    assert.ok(counts!.old > 0, 'users holds rows of documents older than the threshold');
    assert.equal(counts!.copy, counts!.phone, 'phone_copy filled for every row');
    // The rows it holds are every document's (loaded before the threshold was set): a --full run's.
    await assertEqualsFullRun(p, 'threshold', ['--full']);
  });

  test('a dedupe key narrowed back over rows the wider key made: etl schema applies it, the next run recomputes every row', async () => {
    // The key columns of the index load finds a key's contributions by.
    const contributionsIndex = async (): Promise<string[]> => {
      const [row] = await query<{ columns: string[] }>(
        world.incremental,
        `SELECT array_agg(a.attname::text ORDER BY k.n) AS columns FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE c.relname = 'etl_contrib_menu_recipes_key'`,
      );
      return row?.columns ?? [];
    };
    const wider = await pipeline('wider-key', [], [
      ...PHONE_COPY,
      ['    dedupe_key: [menu_id, recipe_id]\n', '    dedupe_key: [menu_id, recipe_id, created_at]\n'],
      ['      - [menu_id, recipe_id]\n', '      - [menu_id, recipe_id, created_at]\n'],
    ]);
    assert.equal((await schema(wider)).code, 0);
    assert.deepEqual(await contributionsIndex(), ['menu_id', 'recipe_id', 'created_at'], 'the contributions are indexed by the new key');
    // A second document for a (menu, recipe) pair, created later: under the wider key, a row of its own.
    const client = new MongoClient(world.mongo.url);
    try {
      const menurecipes = client.db(world.mongo.name).collection('menurecipes');
      const doc = await menurecipes.findOne({ menu: { $type: 'objectId' }, recipe: { $type: 'objectId' } }, { sort: { _id: 1 } });
      await menurecipes.insertOne({ ...doc, _id: new ObjectId(), creation_date: new Date(), update_date: new Date() });
    } finally {
      await client.close();
    }
    const r = await run(wider, world.incremental, 'incremental', ['--propagate-deletes']);
    assert.equal(r.code, 0, r.output);
    const [pairs] = await query<{ n: number }>(world.incremental, 'SELECT count(*)::int AS n FROM (SELECT 1 FROM menu_recipes GROUP BY menu_id, recipe_id HAVING count(*) > 1) AS x');
    assert.ok(pairs!.n > 0, 'a (menu, recipe) pair holds two rows under the wider key');

    const narrower = await pipeline('narrower-key', [], PHONE_COPY);
    const s = await schema(narrower);
    assert.equal(s.code, 0, s.output);
    assert.match(s.stdout, /applied {2}menu_recipes: unique constraint \(menu_id, recipe_id\) of "menu_recipes" is missing; \d+ key\(s\) of it hold several rows the old dedupe key made/);
    assert.deepEqual(await contributionsIndex(), ['menu_id', 'recipe_id'], 'and by the narrower key once it is back');
    const r2 = await run(narrower, world.incremental, 'incremental', ['--propagate-deletes']);
    assert.equal(r2.code, 0, r2.output);
    await assertEqualsFullRun(narrower, 'narrower-key');
  });
});

describe('etl run --since leaves a changed mapping to the next plain run, which reads it in full', () => {
  const world = loadedSample('evolution since', 300);
  const { run } = world;

  test('a table added to pipeline.yaml and first loaded by etl run --since gets every document on the next plain run', async () => {
    const doc = parseDocument(await readFile(SHIPPED, 'utf8'));
    doc.setIn(['tables', 'recipe_details'], doc.createNode({ mongo_collection: 'recipes', include_base: true, additional_columns: [{ name: 'title', sql_type: 'VARCHAR(255)' }], additional_mappings: { name: 'title' } }));
    const file = path.join(world.work, 'recipe-details.yaml');
    await writeFile(file, doc.toString());
    const schema = await etl(['schema', '--yes', '--pipeline', file, '--database-url', world.incremental]);
    assert.equal(schema.code, 0, schema.output);

    // No recipe changed since: the --since run reads none, and recipe_details stays empty.
    const since = await run(file, world.incremental, 'incremental', ['--since', new Date().toISOString()]);
    assert.equal(since.code, 0, since.output);
    const [during] = await query<{ n: number }>(world.incremental, 'SELECT count(*)::int AS n FROM recipe_details');
    assert.equal(during!.n, 0, 'recipe_details holds the documents read since the date: none');

    const plain = await run(file, world.incremental, 'incremental');
    assert.equal(plain.code, 0, plain.output);
    const report = JSON.parse(plain.stdout) as { extract: { warnings: string[]; collections: { collection: string; watermark: { from: string | null } }[] } };
    assert.equal(report.extract.collections.find((c) => c.collection === 'recipes')?.watermark.from, null, 'recipes read in full: recipe_details never had its mapping read in full');
    assert.match(report.extract.warnings.join('\n'), /recipe_details was never read in full with its mapping \(loaded only from part of its collection: by reads from a date, --since, or from a run extracted with another pipeline\.yaml\): collection recipes is read in full/);
    const [counts] = await query<{ details: number; recipes: number }>(world.incremental, 'SELECT (SELECT count(*)::int FROM recipe_details) AS details, (SELECT count(*)::int FROM recipes) AS recipes');
    assert.ok(counts!.recipes > 0);
    assert.equal(counts!.details, counts!.recipes, 'one row of recipe_details per recipe');
  });
});

describe('a primary key moved on a table spelled out without include_base, by etl schema and a run, equals a full run', () => {
  const world = loadedSample('evolution key', 300);
  const { run } = world;

  const schema = (pipeline: string, allow: string) => etl(['schema', '--yes', '--allow', allow, '--pipeline', pipeline, '--database-url', world.incremental]);

  /** The shipped pipeline with items' include_base written out and its primary key (id, `column`). */
  async function itemsKeyedBy(column: string): Promise<string> {
    const doc = parseDocument(await readFile(SHIPPED, 'utf8'));
    spellOutBase(doc, doc.getIn(['tables', 'items']) as YAMLMap);
    const node = (doc.getIn(['tables', 'items', 'columns']) as YAMLSeq<YAMLMap>).items.find((c) => c.get('name') === column)!;
    node.set('primary_key', true);
    const file = path.join(world.work, `items-${column}.yaml`);
    await writeFile(file, doc.toString());
    return file;
  }

  async function assertEqualsFullRun(file: string, label: string) {
    const fresh = await world.servers.postgres.createDatabase(`evolution key full ${label}`);
    const full = await run(file, fresh, `full-${label}`);
    assert.equal(full.code, 0, full.stderr);
    const names = [...(await loadPipeline(file)).loadOrder];
    assert.deepEqual(await contents(world.incremental, names), await contents(fresh, names));
  }

  const itemsKey = async () =>
    (await query<{ c: string }>(world.incremental, `SELECT a.attname AS c FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) WHERE i.indisprimary AND i.indrelid = 'items'::regclass ORDER BY 1`)).map((r) => r.c);
  const itemsCounts = async () => (await query<{ rows: number; nulls: number }>(world.incremental, 'SELECT count(*)::int AS rows, count(*) FILTER (WHERE updated_by IS NULL)::int AS nulls FROM items'))[0]!;

  test('a key over a column holding NULLs: refused, naming the table, the column and --allow not-null:, with nothing applied; applied with it', async () => {
    const file = await itemsKeyedBy('updated_by');
    const before = await itemsCounts();
    assert.ok(before.nulls > 0, 'rows of items hold NULL in updated_by');

    const refused = await schema(file, 'primary-key:items');
    assert.equal(refused.code, 1, refused.output);
    assert.match(refused.stderr, /items: primary key of "items" is \(id\), pipeline\.yaml says \(id, updated_by\)/);
    assert.match(refused.stderr, new RegExp(`${before.nulls} row\\(s\\) hold NULL in "updated_by", which a primary key never holds: --allow not-null:items\\.updated_by deletes them`));
    assert.deepEqual(await itemsKey(), ['id'], 'nothing applied: the key is as it was');
    assert.deepEqual(await itemsCounts(), before, 'nothing applied: every row is there');

    // With the NOT NULL change allowed, its DELETE comes first and the key goes on.
    const applied = await schema(file, 'primary-key:items,not-null:items.updated_by');
    assert.equal(applied.code, 0, applied.output);
    assert.deepEqual(await itemsKey(), ['id', 'updated_by']);
    assert.deepEqual(await itemsCounts(), { rows: before.rows - before.nulls, nulls: 0 });
    const r = await run(file, world.incremental, 'incremental', ['--propagate-deletes']);
    assert.equal(r.code, 0, r.output);
    await assertEqualsFullRun(file, 'updated-by');
  });

  test('a key (id, text): a document whose text changes keeps one row, the new one; a deleted one takes its row', async () => {
    const file = await itemsKeyedBy('text');
    const s = await schema(file, 'primary-key:items');
    assert.equal(s.code, 0, s.output);
    const first = await run(file, world.incremental, 'incremental', ['--propagate-deletes']);
    assert.equal(first.code, 0, first.output);
    const client = new MongoClient(world.mongo.url);
    let edited: ObjectId;
    try {
      const items = client.db(world.mongo.name).collection('items');
      const [a, b] = await items.find({ text: { $type: 'string' } }, { sort: { _id: 1 }, limit: 2 }).toArray();
      edited = a!._id as ObjectId;
      await items.updateOne({ _id: edited }, { $set: { text: 'a text that changed', update_date: new Date() } });
      await items.deleteOne({ _id: b!._id });
    } finally {
      await client.close();
    }
    const r = await run(file, world.incremental, 'incremental', ['--propagate-deletes']);
    assert.equal(r.code, 0, r.output);
    const rows = await query<{ text: string }>(world.incremental, 'SELECT text FROM items WHERE id = $1', [edited.toHexString()]);
    assert.deepEqual(rows, [{ text: 'a text that changed' }], 'one row for the document: its text now');
    await assertEqualsFullRun(file, 'text');
  });
});

describe('a table added to pipeline.yaml after the extract and first loaded from that run is read in full by the next run', () => {
  // 3000: about ten recipes, so the one the incremental extract reads is not all of them.
  const world = loadedSample('evolution late table', 3000);
  const { run } = world;

  test('extract with the old pipeline.yaml, transform --allow-pipeline-change and load with the new one: the next plain run fills the new table', async () => {
    // One recipe changes, so the incremental extract reads it (and only it).
    const client = new MongoClient(world.mongo.url);
    try {
      await client.connect();
      const changed = await client.db(world.mongo.name).collection('recipes').updateOne({}, { $set: { name: 'Tarte fine', update_date: new Date() } });
      assert.equal(changed.modifiedCount, 1);
    } finally {
      await client.close();
    }
    const staging = path.join(world.work, 'incremental');
    const extract = await etl(['extract', '--source', world.mongo.url, '--mongo-db', world.mongo.name, '--staging', staging, '--pipeline', SHIPPED], { env: { DATABASE_URL: world.incremental } });
    assert.equal(extract.code, 0, extract.output);

    const doc = parseDocument(await readFile(SHIPPED, 'utf8'));
    doc.setIn(['tables', 'recipe_titles'], doc.createNode({ mongo_collection: 'recipes', include_base: true, additional_columns: [{ name: 'title', sql_type: 'VARCHAR(255)' }], additional_mappings: { name: 'title' } }));
    const file = path.join(world.work, 'recipe-titles.yaml');
    await writeFile(file, doc.toString());
    for (const args of [
      ['schema', '--yes', '--pipeline', file, '--database-url', world.incremental],
      ['transform', '--allow-pipeline-change', '--staging', staging, '--pipeline', file],
      ['load', '--staging', staging, '--pipeline', file, '--database-url', world.incremental],
    ]) {
      const r = await etl(args);
      assert.equal(r.code, 0, `etl ${args[0]}: ${r.output}`);
    }
    const [during] = await query<{ n: number }>(world.incremental, 'SELECT count(*)::int AS n FROM recipe_titles');
    assert.equal(during!.n, 1, 'recipe_titles holds the one recipe the incremental extract read');

    const plain = await run(file, world.incremental, 'incremental');
    assert.equal(plain.code, 0, plain.output);
    const report = JSON.parse(plain.stdout) as { extract: { collections: { collection: string; watermark: { from: string | null } }[] } };
    assert.equal(report.extract.collections.find((c) => c.collection === 'recipes')?.watermark.from, null, 'recipes read in full: recipe_titles was never read in full');
    const [counts] = await query<{ titles: number; recipes: number }>(world.incremental, 'SELECT (SELECT count(*)::int FROM recipe_titles) AS titles, (SELECT count(*)::int FROM recipes) AS recipes');
    assert.ok(counts!.recipes > 1);
    assert.equal(counts!.titles, counts!.recipes, 'one row of recipe_titles per recipe');
  });
});

// A table renamed in pipeline.yaml (the same collection under a new name): the new table is created
// and read in full, the old one is retired with its rows, and a foreign key that followed the rename
// waits for the run that fills the new table.
describe('a renamed table: etl schema, a run and etl schema again equal a full run', () => {
  const world = loadedSample('evolution rename', 300);
  const { run } = world;

  test('menus renamed menu_events: --check says the foreign key of menu_recipes waits for a run (no --allow to give); after the run etl schema adds it', async () => {
    const file = path.join(world.work, 'menu-events.yaml');
    await writeFile(file, edited(await readFile(SHIPPED, 'utf8'), [['  menus:\n', '  menu_events:\n'], ['foreign_key: menus(id)', 'foreign_key: menu_events(id)']]));
    const schema = (...extra: string[]) => etl(['schema', '--pipeline', file, '--database-url', world.incremental, ...extra]);

    const check = await schema('--check');
    assert.equal(check.code, 1, check.output);
    assert.doesNotMatch(check.stdout, /--allow null/, `a change that waits for a run names no --allow:\n${check.output}`);
    assert.match(check.stdout, /refused {2}menu_recipes: foreign key "menu_recipes"\."menu_id" → menu_events\(id\) is missing .*run `etl schema` again after that run to add the key/, check.output);

    const first = await schema('--yes');
    assert.equal(first.code, 0, first.output);
    assert.match(first.stdout, /created {2}menu_events/);
    assert.match(first.stdout, /applied {2}menus: table "menus" is no longer in pipeline\.yaml/);
    assert.match(first.stdout, /1 change\(s\) wait for a run:/);
    const r = await run(file, world.incremental, 'incremental');
    assert.equal(r.code, 0, r.output);
    const second = await schema('--yes');
    assert.equal(second.code, 0, second.output);
    assert.match(second.stdout, /applied {2}menu_recipes: foreign key "menu_recipes"\."menu_id" → menu_events\(id\) is missing/);
    const clean = await schema('--check');
    assert.equal(clean.code, 0, clean.output);

    const fresh = await world.servers.postgres.createDatabase('evolution rename full');
    const full = await run(file, fresh, 'full');
    assert.equal(full.code, 0, full.output);
    const names = [...(await loadPipeline(file)).loadOrder];
    assert.deepEqual(await contents(world.incremental, names), await contents(fresh, names));
    const [kept] = await query<{ n: number }>(world.incremental, 'SELECT count(*)::int AS n FROM menus');
    assert.ok(kept!.n > 0, 'the retired menus keeps its rows');
  });
});

// TEXT → JSONB: PostgreSQL cannot convert the text `hello` to JSONB, so `etl schema --allow type:`
// deletes those rows before the ALTER; but transform writes the string "hello" as the JSONB string
// `"hello"`, so a full run keeps them, and the next run, which reads the table in full, brings them back.
describe('a type change whose rows PostgreSQL cannot convert and transform can write: etl schema and a run equal a full run', () => {
  const world = loadedSample('evolution jsonb', 300);
  const { run } = world;

  test('messages.content TEXT → JSONB: etl schema says the rows it deletes come back with the next run, which brings them back', async () => {
    const file = path.join(world.work, 'content-jsonb.yaml');
    await writeFile(file, edited(await readFile(SHIPPED, 'utf8'), [['      - name: content\n        sql_type: TEXT', '      - name: content\n        sql_type: JSONB']]));
    const [before] = await query<{ n: number }>(world.incremental, 'SELECT count(*)::int AS n FROM messages');
    assert.ok(before!.n > 0);

    const schema = await etl(['schema', '--yes', '--allow', 'type:messages.content', '--pipeline', file, '--database-url', world.incremental]);
    assert.equal(schema.code, 0, schema.output);
    assert.match(schema.stdout, new RegExp(`deleted {2}messages: ${before!.n} row\\(s\\)`), schema.output);
    const refusal = await etl(['schema', '--check', '--pipeline', file, '--database-url', world.incremental]);
    assert.equal(refusal.code, 0, `applied: nothing differs\n${refusal.output}`);

    const r = await run(file, world.incremental, 'incremental');
    assert.equal(r.code, 0, r.output);
    const [after] = await query<{ n: number }>(world.incremental, 'SELECT count(*)::int AS n FROM messages');
    assert.equal(after!.n, before!.n, 'every message is back, its content as a JSONB string');
    const fresh = await world.servers.postgres.createDatabase('evolution jsonb full');
    const full = await run(file, fresh, 'full');
    assert.equal(full.code, 0, full.output);
    const names = [...(await loadPipeline(file)).loadOrder];
    assert.deepEqual(await contents(world.incremental, names), await contents(fresh, names));
  });

  test('a dedupe table\'s dedupe-key column DATE → TIMESTAMP: its contributions follow the new type, so the run keeps every row', async () => {
    const file = path.join(world.work, 'day-timestamp.yaml');
    const day = '      - name: day\n        sql_type: DATE\n';
    await writeFile(file, edited(await readFile(SHIPPED, 'utf8'), [['      - name: content\n        sql_type: TEXT', '      - name: content\n        sql_type: JSONB'], [day, day.replace('DATE', 'TIMESTAMP')]]));
    const schema = await etl(['schema', '--yes', '--allow', 'type:messages.content,type:users_logbook.day', '--pipeline', file, '--database-url', world.incremental]);
    assert.equal(schema.code, 0, schema.output);
    const [contrib] = await query<{ type: string }>(world.incremental, `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'etl_contrib_users_logbook'::regclass AND attname = 'day'`);
    assert.equal(contrib!.type, 'timestamp without time zone', 'the contributions table has the new type too');
    const r = await run(file, world.incremental, 'incremental');
    assert.equal(r.code, 0, r.output);
    const fresh = await world.servers.postgres.createDatabase('evolution jsonb day full');
    const full = await run(file, fresh, 'full-day');
    assert.equal(full.code, 0, full.output);
    const names = [...(await loadPipeline(file)).loadOrder];
    assert.deepEqual(await contents(world.incremental, names), await contents(fresh, names));
  });

  test('VARCHAR → JSONB: what etl schema says of the rows it would delete is true, not "a full run rejects them"', async () => {
    const file = path.join(world.work, 'name-jsonb.yaml');
    await writeFile(file, edited(await readFile(SHIPPED, 'utf8'), [['      - name: content\n        sql_type: TEXT', '      - name: content\n        sql_type: JSONB'], ['  companies:\n    include_base: true\n    additional_columns:\n      - name: name\n        sql_type: VARCHAR(255)', '  companies:\n    include_base: true\n    additional_columns:\n      - name: name\n        sql_type: JSONB']]));
    const check = await etl(['schema', '--check', '--pipeline', file, '--database-url', world.incremental]);
    assert.equal(check.code, 1, check.output);
    assert.match(check.stdout, /refused {2}companies: JSONB may not hold what VARCHAR\(255\) holds: \d+ row\(s\) hold a value it cannot take and are deleted/, check.output);
    assert.doesNotMatch(check.stdout, /a full run rejects them/, check.output);
    assert.match(check.stdout, /the next run reads companies in full/, check.output);
  });
});

// A NOT NULL column removed from pipeline.yaml: its DROP COLUMN waits for --allow, and meanwhile the
// column stays with its values; load writes rows without it, which its NOT NULL would refuse.
describe('a NOT NULL column removed from pipeline.yaml, its drop not allowed: the run still loads', () => {
  const world = loadedSample('evolution kept column', 300);
  const { run } = world;

  test('users.role removed: etl schema keeps the column (values and all) without its NOT NULL, the run loads; dropped with --allow, the tables equal a full run', async () => {
    const file = path.join(world.work, 'no-role.yaml');
    await writeFile(file, edited(await readFile(SHIPPED, 'utf8'), [['      - name: role\n        sql_type: VARCHAR(100)\n        nullable: false\n', '']]));
    const [before] = await query<{ n: number }>(world.incremental, 'SELECT count(role)::int AS n FROM users');
    assert.ok(before!.n > 0);

    // Before etl schema, the load cannot write users without role: its hint says what to run.
    const early = await run(file, world.incremental, 'incremental');
    assert.equal(early.code, 1, early.output);
    const failure = JSON.parse(early.stdout) as { error: { code: string; hint: string } };
    assert.equal(failure.error.code, 'pg_23502');
    assert.match(failure.error.hint, /if "users"\."role" is no longer in pipeline\.yaml, run `etl schema`/, failure.error.hint);

    const schema = await etl(['schema', '--yes', '--pipeline', file, '--database-url', world.incremental]);
    assert.equal(schema.code, 0, schema.output);
    assert.match(schema.stdout, /applied {2}users: column "users"\."role" is not in pipeline\.yaml and NOT NULL: NOT NULL dropped/, schema.output);
    assert.match(schema.stdout, /refused {2}users: column "users"\."role" \(character varying\(100\)\) is not in pipeline\.yaml/, schema.output);
    assert.match(schema.stdout, /apply with: --allow drop-column:users\.role/, schema.output);
    const r = await run(file, world.incremental, 'incremental');
    assert.equal(r.code, 0, `the run loads users without role:\n${r.output}`);
    const [kept] = await query<{ n: number }>(world.incremental, 'SELECT count(role)::int AS n FROM users');
    assert.equal(kept!.n, before!.n, 'role keeps its values');

    const drop = await etl(['schema', '--yes', '--allow', 'drop-column:users.role', '--pipeline', file, '--database-url', world.incremental]);
    assert.equal(drop.code, 0, drop.output);
    const fresh = await world.servers.postgres.createDatabase('evolution kept column full');
    const full = await run(file, fresh, 'full');
    assert.equal(full.code, 0, full.output);
    const names = [...(await loadPipeline(file)).loadOrder];
    assert.deepEqual(await contents(world.incremental, names), await contents(fresh, names));
  });
});
