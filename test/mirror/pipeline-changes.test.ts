// Edits of pipeline.yaml the randomized proof (evolution-randomized.test.ts, pipeline-edits.ts) does
// not draw, each made as a user would between two runs, through the real CLI, FerretDB and
// PostgreSQL: a full run with the shipped pipeline.yaml, the edit, `etl schema --yes` where the
// README says to run it, then incremental runs with the edited file. After each incremental run
// every table must equal a fresh database filled by `etl run --full` with the edited pipeline.yaml
// (Mirror.referenceRun, assertMirrors).
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { etl, STACK_LINE, type CliResult } from '../harness/cli.ts';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { assertMirrors, Mirror, PIPELINE } from './harness.ts';

const servers = useServers();
const SCALE = 200;

/** The text with `before` (which must be there, once) replaced by `after`. */
function edited(text: string, before: string, after: string): string {
  assert.equal(text.split(before).length, 2, `the shipped pipeline.yaml holds ${JSON.stringify(before)} once`);
  return text.replace(before, after);
}

/** A mirror loaded in full with the shipped pipeline.yaml, copied to `<work>/pipeline.yaml` for the test to edit. */
async function loaded(t: Parameters<typeof Mirror.open>[0]): Promise<{ m: Mirror; file: string; text: string }> {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE, 5);
  const file = path.join(m.work, 'pipeline.yaml');
  const text = await readFile(PIPELINE, 'utf8');
  await writeFile(file, text);
  await m.incremental(['--propagate-deletes'], file);
  return { m, file, text };
}

function schema(m: Mirror, file: string, extra: readonly string[] = []): Promise<CliResult> {
  return etl(['schema', '--pipeline', file, '--database-url', m.incrementalUrl, '--yes', ...extra]);
}

/** Every table of the incremental database equals a full run of MongoDB as it is, with `file`. */
async function assertEqualsFullRun(m: Mirror, file: string, context: string): Promise<void> {
  const reference = await m.referenceRun(file);
  await assertMirrors(await loadPipeline(file), m.incrementalUrl, reference.url, { examples: 5, context });
}

test('force_reimport and truncate_before_import set on a table others reference: the tables its TRUNCATE … CASCADE empties are read in full by the same run, every run', async (t) => {
  const { m, file, text } = await loaded(t);
  // companies is referenced by users and events, and through users by most tables.
  await writeFile(file, edited(text, '        nullable: false\n    export_order: 1\n\n  offers:', '        nullable: false\n    force_reimport: true\n    truncate_before_import: true\n    export_order: 1\n\n  offers:'));
  assert.equal((await schema(m, file)).code, 0);
  const status = await etl(m.incrementalArgs('status', [], file), { env: m.incrementalEnv });
  assert.match(status.stdout, /full read, emptied by TRUNCATE companies CASCADE: [^\n]*\busers\b/, `etl status says what the next run reads in full:\n${status.output}`);
  for (const run of [1, 2]) {
    const report = await m.incremental(['--propagate-deletes'], file);
    const users = report.extract.collections.find((c) => c.collection === 'users')!;
    assert.equal(users.watermark.from, null, `run ${run}: users, emptied by TRUNCATE companies CASCADE, is read in full`);
    await assertEqualsFullRun(m, file, `run ${run} after force_reimport + truncate_before_import on companies`);
  }
});

/** A few users and their messages edited now, and one message deleted: each run after it has something to read. */
async function editSome(m: Mirror, round: number): Promise<void> {
  const db = await m.db();
  const now = new Date();
  const users = await db.collection('users').find({}, { projection: { _id: 1 } }).limit(3).skip(round * 3).toArray();
  for (const u of users) await db.collection('users').updateOne({ _id: u._id }, { $set: { lastname: `Edited${round}`, update_date: now } });
  const [message] = await db.collection('messages').find({}, { projection: { _id: 1 } }).skip(round).limit(1).toArray();
  if (message) await db.collection('messages').deleteOne({ _id: message._id });
}

test('truncate_before_import set on users, then removed with force_reimport kept, then force_reimport removed too: after each edit and incremental run the tables equal a full run', async (t) => {
  const { m, file, text } = await loaded(t);
  const usersEnd = '      company: company_id\n    export_order: 2\n\n  menus:';
  const steps: readonly [string, string][] = [
    ['force_reimport + truncate_before_import on users', '    force_reimport: true\n    truncate_before_import: true\n'],
    ['truncate_before_import removed, force_reimport kept', '    force_reimport: true\n'],
    ['force_reimport removed too', ''],
  ];
  for (const [round, [what, flags]] of steps.entries()) {
    await writeFile(file, edited(text, usersEnd, usersEnd.replace('    export_order', `${flags}    export_order`)));
    assert.equal((await schema(m, file)).code, 0, 'etl schema has nothing to change (no fingerprint changes)');
    await editSome(m, round);
    await m.incremental(['--propagate-deletes'], file);
    await assertEqualsFullRun(m, file, what);
  }
});

test('an explode table\'s merge key gaining a column added by the same edit, and a dedupe table keyed by a column added by the same edit alone: etl schema applies both, and every run after equals a full run', async (t) => {
  const { m, file, text } = await loaded(t);
  // users_targets: a new NOT NULL column role ← the user's role, in the unique constraint it merges on.
  const targets = edited(
    text,
    "      - name: type\n        sql_type: VARCHAR(50)\n        nullable: false\n      - name: created_at\n        sql_type: TIMESTAMP\n        nullable: false\n      - name: updated_at\n        sql_type: TIMESTAMP\n        nullable: false\n    explicit_mappings:\n      creation_date: created_at\n      update_date: updated_at\n    unique_constraints:\n      - [user_id, target_id, type]\n",
    "      - name: type\n        sql_type: VARCHAR(50)\n        nullable: false\n      - name: role\n        sql_type: VARCHAR(100)\n        nullable: false\n      - name: created_at\n        sql_type: TIMESTAMP\n        nullable: false\n      - name: updated_at\n        sql_type: TIMESTAMP\n        nullable: false\n    explicit_mappings:\n      creation_date: created_at\n      update_date: updated_at\n    unique_constraints:\n      - [user_id, target_id, type, role]\n",
  );
  // menu_recipes: one row per menu day (a new column menu_day ← day), the latest document's.
  const byDay = edited(
    edited(targets, '    dedupe_key: [menu_id, recipe_id]\n', '    dedupe_key: [menu_day]\n'),
    '      update_date: updated_at\n    unique_constraints:\n      - [menu_id, recipe_id]\n',
    '      update_date: updated_at\n      day: menu_day\n    unique_constraints:\n      - [menu_day]\n',
  );
  const keyed = edited(byDay, "        foreign_key: recipes(id)\n      - name: created_at\n        sql_type: TIMESTAMP\n        nullable: false\n      - name: updated_at\n        sql_type: TIMESTAMP\n        nullable: false\n    explicit_mappings:\n      menu: menu_id", "        foreign_key: recipes(id)\n      - name: menu_day\n        sql_type: VARCHAR(10)\n        nullable: false\n      - name: created_at\n        sql_type: TIMESTAMP\n        nullable: false\n      - name: updated_at\n        sql_type: TIMESTAMP\n        nullable: false\n    explicit_mappings:\n      menu: menu_id");
  await writeFile(file, keyed);
  const applied = await schema(m, file);
  assert.equal(applied.code, 0, applied.output);
  await m.incremental(['--propagate-deletes'], file);
  await assertEqualsFullRun(m, file, 'users_targets merge key + role, menu_recipes keyed by menu_day alone');
  assert.equal((await schema(m, file)).code, 0, 'etl schema sets NOT NULL on the filled columns');
  const check = await etl(['schema', '--pipeline', file, '--database-url', m.incrementalUrl, '--check']);
  assert.equal(check.code, 0, `the database matches pipeline.yaml:\n${check.output}`);
  const db = await m.db();
  const now = new Date();
  for (const r of await db.collection('menurecipes').find({}).limit(4).toArray()) await db.collection('menurecipes').updateOne({ _id: r._id }, { $set: { day: 'monday', update_date: now } });
  for (const u of await db.collection('users').find({}).limit(4).toArray()) await db.collection('users').updateOne({ _id: u._id }, { $set: { role: 'COACH', update_date: now } });
  await editSome(m, 4);
  await m.incremental(['--propagate-deletes'], file);
  await assertEqualsFullRun(m, file, 'after data edits, an incremental run');
});

test('a column added to pipeline.yaml and `etl run` without `etl schema`: the load stops saying to run etl schema; after it, the next run fills the column as a full run does', async (t) => {
  const { m, file, text } = await loaded(t);
  await writeFile(file, edited(text, '      - name: role\n        sql_type: VARCHAR(100)\n        nullable: false\n', '      - name: role\n        sql_type: VARCHAR(100)\n        nullable: false\n      - name: gender\n        sql_type: VARCHAR(10)\n'));
  const refused = await etl(m.incrementalArgs('run', ['--propagate-deletes'], file), { env: m.incrementalEnv });
  assert.equal(refused.code, 1, refused.output);
  assert.match(refused.stderr, /column "gender" of relation "users" does not exist/, refused.stderr);
  assert.match(refused.stderr, /hint: .*run `etl schema`/, `the hint says what to do:\n${refused.stderr}`);
  assert.doesNotMatch(refused.output, /^\s+at /m, refused.output);
  assert.equal((await schema(m, file)).code, 0);
  await m.incremental(['--propagate-deletes'], file);
  await assertEqualsFullRun(m, file, 'users.gender added, run refused, etl schema, then run');
});

test('a type narrowed in pipeline.yaml while a run transformed before waits: `etl load` of that run says to transform it again (not to widen the type back); done so, then `etl run`, the tables equal a full run', async (t) => {
  const { m, file, text } = await loaded(t);
  const db = await m.db();
  await db.collection('messages').updateMany({}, { $set: { update_date: new Date() } });
  const extract = await etl(m.incrementalArgs('extract', ['--json'], file), { env: m.incrementalEnv });
  assert.equal(extract.code, 0, extract.output);
  const runId = (JSON.parse(extract.stdout) as { runId: string }).runId;
  assert.equal((await etl(m.incrementalArgs('transform', [], file), { env: m.incrementalEnv })).code, 0);
  await writeFile(file, edited(text, '      - name: content\n        sql_type: TEXT\n', '      - name: content\n        sql_type: VARCHAR(20)\n'));
  const narrowed = await schema(m, file, ['--allow', 'type:messages.content']);
  assert.equal(narrowed.code, 0, narrowed.output);
  const refused = await etl(m.incrementalArgs('load', [], file), { env: m.incrementalEnv });
  assert.equal(refused.code, 1, refused.output);
  assert.match(refused.stderr, /value too long for type character varying\(20\)/, refused.stderr);
  assert.ok(refused.stderr.includes(`transform it again with this one (\`etl transform --run ${runId} --allow-pipeline-change\`)`), `the hint names the cause and the command:\n${refused.stderr}`);
  const again = await etl(m.incrementalArgs('transform', ['--run', runId, '--allow-pipeline-change'], file), { env: m.incrementalEnv });
  assert.equal(again.code, 0, again.output);
  const load = await etl(m.incrementalArgs('load', ['--run', runId], file), { env: m.incrementalEnv });
  assert.equal(load.code, 0, load.output);
  await m.incremental(['--propagate-deletes'], file);
  await assertEqualsFullRun(m, file, 'messages.content narrowed, the waiting run transformed again and loaded, then a run');
});

/** menu_recipes made one row per menurecipes document: strategy upsert, a new `id` column from `_id` as its primary key, the (menu_id, recipe_id) key gone. */
function menuRecipesByDocument(text: string): string {
  const keyed = edited(text, '    strategy: dedupe\n    dedupe_key: [menu_id, recipe_id]\n    latest_by: updated_at\n    columns:\n      - name: menu_id\n', '    columns:\n      - name: id\n        sql_type: VARCHAR\n        primary_key: true\n      - name: menu_id\n');
  return edited(keyed, '      menu: menu_id\n      recipe: recipe_id\n      creation_date: created_at\n      update_date: updated_at\n    unique_constraints:\n      - [menu_id, recipe_id]\n', '      _id: id\n      menu: menu_id\n      recipe: recipe_id\n      creation_date: created_at\n      update_date: updated_at\n');
}

test('a primary key on a column pipeline.yaml adds to a table holding rows: etl schema refuses it before changing anything, naming the --allow that empties the table; with it, the next run fills the table as a full run does', async (t) => {
  const { m, file, text } = await loaded(t);
  await writeFile(file, menuRecipesByDocument(text));
  const refused = await schema(m, file);
  assert.equal(refused.code, 1, refused.output);
  assert.doesNotMatch(refused.output, /schema_create_failed/, `the rows are checked before anything is applied:\n${refused.output}`);
  assert.match(refused.output, /--allow not-null:menu_recipes\.id/, `etl schema names the flag that makes way for the key:\n${refused.output}`);
  const unchanged = await etl(['schema', '--pipeline', file, '--database-url', m.incrementalUrl, '--check']);
  assert.match(unchanged.stdout, /column "menu_recipes"\."id" is missing/, `nothing was applied:\n${unchanged.output}`);
  const applied = await schema(m, file, ['--allow', 'not-null:menu_recipes.id']);
  assert.equal(applied.code, 0, applied.output);
  await m.incremental(['--propagate-deletes'], file);
  await assertEqualsFullRun(m, file, 'menu_recipes keyed by a new id column');
  const check = await etl(['schema', '--pipeline', file, '--database-url', m.incrementalUrl, '--check']);
  assert.equal(check.code, 0, `the database matches pipeline.yaml:\n${check.output}`);
});

/**
 * messages keyed by (id, seen): include_base spelled out (the same columns, mappings and key), and a
 * new column `seen` ← `seen` (absent from some documents) in the primary key.
 */
function messagesKeyedBySeen(text: string): string {
  const base =
    '    columns:\n' +
    ['id', 'created_at', 'updated_at']
      .map((name) => `      - name: ${name}\n        sql_type: ${name === 'id' ? 'VARCHAR' : 'TIMESTAMP'}\n        nullable: false\n${name === 'id' ? '        primary_key: true\n' : ''}`)
      .join('') +
    '      - name: seen\n        sql_type: BOOLEAN\n        primary_key: true\n';
  const columns = edited(text, '  messages:\n    include_base: true\n    additional_columns:\n', `  messages:\n${base}`);
  return edited(columns, '    additional_mappings:\n      sender: sender_id\n      receiver: receiver_id\n    export_order: 3', '    explicit_mappings:\n      _id: id\n      creation_date: created_at\n      update_date: updated_at\n      sender: sender_id\n      receiver: receiver_id\n    export_order: 3');
}

test('a primary key replaced by one over a column pipeline.yaml adds, on a table holding rows: the refusal names every --allow the change needs (primary-key: and the new column\'s not-null:); with them, the next run fills the table as a full run does', async (t) => {
  const { m, file, text } = await loaded(t);
  await writeFile(file, messagesKeyedBySeen(text));
  const refused = await schema(m, file);
  assert.equal(refused.code, 1, `a change load needs stays unapplied:\n${refused.output}`);
  assert.ok(refused.stdout.includes('apply with: --allow primary-key:messages,not-null:messages.seen'), `the refusal names both flags the key needs:\n${refused.output}`);
  assert.match(refused.stdout, /load needs the primary key of "messages"/, `etl schema says load needs the refused key:\n${refused.output}`);
  // A run before the key is decided: refused, saying what to do (not PostgreSQL's ON CONFLICT message alone).
  const early = await etl(m.incrementalArgs('run', ['--propagate-deletes'], file), { env: m.incrementalEnv });
  assert.equal(early.code, 1, early.output);
  assert.doesNotMatch(early.output, STACK_LINE, early.output);
  assert.match(early.stderr, /hint: .*run `etl schema` \(a replaced primary key needs --allow primary-key:messages\)/, `the hint says what to do:\n${early.stderr}`);
  const applied = await schema(m, file, ['--allow', 'primary-key:messages,not-null:messages.seen']);
  assert.equal(applied.code, 0, applied.output);
  await m.incremental(['--propagate-deletes'], file);
  await assertEqualsFullRun(m, file, 'messages keyed by (id, seen), seen a new column');
  const check = await etl(['schema', '--pipeline', file, '--database-url', m.incrementalUrl, '--check']);
  assert.equal(check.code, 0, `the database matches pipeline.yaml:\n${check.output}`);
});

test('a mongo_collection misspelt in pipeline.yaml: etl run stops before deleting the table, and shows the extract warning its hint points at', async (t) => {
  const { m, file, text } = await loaded(t);
  await writeFile(file, edited(text, '    mongo_collection: quizzquestions\n', '    mongo_collection: quizzquestion\n'));
  assert.equal((await schema(m, file)).code, 0);
  const refused = await etl(m.incrementalArgs('run', [], file), { env: m.incrementalEnv });
  assert.equal(refused.code, 1, refused.output);
  assert.match(refused.stderr, /\[delete_all_refused\]/, refused.stderr);
  assert.match(refused.stderr, /hint: check the source database and collection names \(extract warns about a missing collection\)/, refused.stderr);
  assert.match(refused.stderr, /warning: quizzquestion: collection "quizzquestion" does not exist in the source/, `the warning the hint points at is shown:\n${refused.stderr}`);
  await writeFile(file, text);
  await m.incremental([], file);
  await assertEqualsFullRun(m, file, 'the name fixed back');
});
