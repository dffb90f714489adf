// The resolved model: the shipped pipeline.yaml, defaults, column sources, merge keys, load order,
// collections (projection, server filter), and that the model cannot be changed.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { parseSqlType, sqlTypeText, canonicalCatalogType } from '../../model/sql-types.ts';
import type { PipelineModel } from '../../model/types.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHIPPED = path.join(ROOT, 'pipeline.yaml');
const FIXTURES = path.join(ROOT, 'test/fixtures/pipelines');

let dir = '';
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'etl-model-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fromText(yaml: string, options?: Parameters<typeof loadPipeline>[1]): Promise<PipelineModel> {
  const file = path.join(dir, `p-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, yaml);
  return loadPipeline(file, options);
}

describe('the shipped pipeline.yaml', () => {
  let model: PipelineModel;
  before(async () => {
    model = await loadPipeline(SHIPPED);
  });

  test('validates, with 31 tables', () => {
    assert.equal(model.tables.size, 31);
    assert.equal(model.loadOrder.length, 31);
    assert.equal(new Set(model.loadOrder).size, 31);
    assert.equal(model.file, SHIPPED);
  });

  test('its load order puts every table after every table it references', () => {
    const position = new Map(model.loadOrder.map((n, i) => [n, i]));
    let checked = 0;
    for (const t of model.tables.values()) {
      for (const c of t.columns) {
        if (!c.foreignKey || c.foreignKey.table === t.name) continue;
        assert.ok(position.get(c.foreignKey.table)! < position.get(t.name)!, `${t.name}.${c.name} → ${c.foreignKey.table}`);
        checked++;
      }
    }
    assert.equal(checked, 37, 'every foreign key of the shipped pipeline is checked');
    // The seed grouped coachings with users_quizzs, which it references: the foreign keys decide.
    assert.ok(position.get('users_quizzs')! < position.get('coachings')!);
    // Ties follow export_order then the file order.
    assert.deepEqual(model.loadOrder.slice(0, 3), ['ingredients', 'appointment_types', 'companies']);
  });

  test('its sha256 is the one of the file bytes', async () => {
    assert.equal(model.sha256, createHash('sha256').update(await readFile(SHIPPED)).digest('hex'));
  });

  test('settings are read; the global date threshold overrides settings.date_threshold', async () => {
    assert.deepEqual(model.settings, { timezone: 'Europe/Paris', batchSize: 1000, dateThreshold: null, watermarkMarginSeconds: 300, nulCharacter: 'reject' });
    const threshold = new Date('2024-01-31T00:00:00Z');
    const overridden = await loadPipeline(SHIPPED, { globalDateThreshold: threshold });
    assert.equal(overridden.settings.dateThreshold?.toISOString(), threshold.toISOString());
  });

  test('include_base columns: id, created_at, updated_at from _id, creation_date, update_date', () => {
    const users = model.tables.get('users')!;
    assert.deepEqual(
      users.columns.slice(0, 3).map((c) => [c.name, c.sqlTypeText, c.nullable, c.primaryKey, c.source]),
      [
        ['id', 'VARCHAR', false, true, { kind: 'field', path: '_id' }],
        ['created_at', 'TIMESTAMP', false, false, { kind: 'field', path: 'creation_date' }],
        ['updated_at', 'TIMESTAMP', false, false, { kind: 'field', path: 'update_date' }],
      ],
    );
    const byName = new Map(users.columns.map((c) => [c.name, c]));
    assert.deepEqual(byName.get('birthdate')!.source, { kind: 'field', path: 'birthday' });
    assert.deepEqual(byName.get('email')!.source, { kind: 'field', path: 'email' });
    assert.deepEqual(byName.get('company_id')!.foreignKey, { table: 'companies', column: 'id', onMissing: 'set_null' });
    assert.equal(byName.get('email')!.nullable, false);
    assert.equal(byName.get('phone')!.nullable, true);
    assert.deepEqual(users.primaryKey, ['id']);
    assert.deepEqual(users.mergeKey, ['id']);
    assert.equal(users.strategy, 'upsert');
  });

  test('explode tables: parent, item and constant columns, arrays, merge key', () => {
    const t = model.tables.get('users_targets')!;
    assert.equal(t.collection, 'users');
    assert.deepEqual(
      t.columns.map((c) => [c.name, c.source.kind]),
      [
        ['user_id', 'parent_id'],
        ['target_id', 'item_id'],
        ['type', 'constant'],
        ['created_at', 'field'],
        ['updated_at', 'field'],
      ],
    );
    assert.deepEqual(t.explode, {
      parentColumn: 'user_id',
      merge: 'delete_and_insert',
      arrays: [
        { field: 'targets', itemColumn: 'target_id', itemIdKey: null, itemDateKey: null, constants: { type: 'basic' } },
        { field: 'specificity_targets', itemColumn: 'target_id', itemIdKey: null, itemDateKey: null, constants: { type: 'specificity' } },
        { field: 'health_targets', itemColumn: 'target_id', itemIdKey: null, itemDateKey: null, constants: { type: 'health' } },
      ],
    });
    assert.deepEqual(t.mergeKey, ['user_id', 'target_id', 'type']);
    const events = model.tables.get('user_events')!;
    assert.deepEqual(events.explode!.arrays[0], { field: 'registered_events', itemColumn: 'event_id', itemIdKey: 'event', itemDateKey: 'date', constants: {} });
    assert.deepEqual(events.columns.find((c) => c.name === 'created_at')!.source, { kind: 'field', path: 'creation_date' });
  });

  test('dedupe tables: SERIAL is generated and not staged; merge key is the dedupe key', () => {
    const t = model.tables.get('users_logbook')!;
    assert.deepEqual(t.columns[0]!.source, { kind: 'generated' });
    assert.equal(t.columns[0]!.sqlTypeText, 'SERIAL');
    assert.equal(t.columns[0]!.nullable, false);
    assert.deepEqual(
      t.stagedColumns.map((c) => c.name),
      ['user_id', 'day', 'created_at', 'updated_at'],
    );
    assert.deepEqual(t.dedupe, { key: ['user_id', 'day'], latestBy: 'updated_at' });
    assert.deepEqual(t.mergeKey, ['user_id', 'day']);
    assert.deepEqual(t.primaryKey, ['id']);
    assert.deepEqual(t.columns.find((c) => c.name === 'user_id')!.source, { kind: 'field', path: 'user' });
  });

  test('the document key and the merge kind are resolved per strategy', () => {
    const of = (name: string) => {
      const t = model.tables.get(name)!;
      return [t.strategy, t.documentKey, t.mergeKind];
    };
    assert.deepEqual(of('users'), ['upsert', 'id', 'upsert']);
    assert.deepEqual(of('menus'), ['upsert', 'id', 'upsert']);
    assert.deepEqual(of('users_targets'), ['explode', 'user_id', 'delete_and_insert']);
    assert.deepEqual(of('days_contents_links'), ['explode', 'day_id', 'delete_and_insert']);
    assert.deepEqual(of('users_logbook'), ['dedupe', null, 'dedupe_upsert']);
    assert.deepEqual(of('menu_recipes'), ['dedupe', null, 'dedupe_upsert']);
    for (const t of model.tables.values()) {
      const expected = { upsert: 'id', explode: t.explode?.parentColumn, dedupe: null }[t.strategy];
      assert.equal(t.documentKey, expected, t.name);
    }
  });

  test('collections: one per source collection, in first-use load order, projected, filtered', () => {
    const names = model.collections.map((c) => c.name);
    assert.equal(new Set(names).size, names.length);
    assert.equal(names.length, 22);
    const events = model.collections.find((c) => c.name === 'events')!;
    assert.deepEqual(events.tables, ['events', 'menus']);
    // events reads every document, so the server cannot filter for menus alone.
    assert.equal(events.serverFilter, null);
    assert.deepEqual(model.tables.get('menus')!.filter!.mongoQuery, { __t: 'menu' });
    assert.ok(events.projection.includes('__t'));
    const users = model.collections.find((c) => c.name === 'users')!;
    assert.deepEqual(users.tables, ['users', 'user_events', 'users_targets']);
    assert.deepEqual(users.projection.slice(0, 3), ['_id', 'creation_date', 'update_date']);
    for (const f of ['birthday', 'company', 'registered_events', 'targets', 'specificity_targets', 'health_targets', 'email']) {
      assert.ok(users.projection.includes(f), f);
    }
    assert.ok(!users.projection.includes('birthdate'));
    // First use in load order: a collection comes where its first table loads.
    const firstTable = model.collections.map((c) => model.loadOrder.indexOf(c.tables[0]!));
    assert.deepEqual(firstTable, [...firstTable].sort((a, b) => a - b));
  });

  test('the model is frozen all the way down', () => {
    const users = model.tables.get('users')!;
    assert.throws(() => {
      (users as { name: string }).name = 'x';
    }, TypeError);
    assert.throws(() => {
      (users.columns as unknown as unknown[]).push({});
    }, TypeError);
    assert.throws(() => {
      (model.tables as Map<string, unknown>).set('x', {});
    }, TypeError);
    assert.throws(() => {
      (model.loadOrder as string[]).pop();
    }, TypeError);
    assert.ok(Object.isFrozen(users.columns[0]!.source));
  });
});

describe('resolution details', () => {
  test('defaults: settings, mongo_collection, nullable, strategy, merge', async () => {
    const m = await fromText(`tables:
  things:
    include_base: true
    additional_columns:
      - name: label
        sql_type: text
    export_order: 1
`);
    assert.deepEqual(m.settings, { timezone: 'Europe/Paris', batchSize: 1000, dateThreshold: null, watermarkMarginSeconds: 300, nulCharacter: 'reject' });
    const t = m.tables.get('things')!;
    assert.equal(t.collection, 'things');
    assert.equal(t.strategy, 'upsert');
    assert.equal(t.columns[3]!.nullable, true);
    assert.equal(t.columns[3]!.sqlTypeText, 'TEXT');
    assert.equal(t.filter, null);
    assert.equal(t.forceReimport, false);
    assert.equal(t.truncateBeforeImport, false);
    assert.equal(t.propagateDeletes, false);
    assert.equal(t.dateThreshold, null);
    assert.equal(t.line, 2);
    assert.equal(t.columns[3]!.line, 5);
  });

  test('settings and per-table values are read; dates are UTC', async () => {
    const m = await fromText(`settings:
  timezone: UTC
  batch_size: 50
  date_threshold: 2024-01-31
  watermark_margin_seconds: 0
  nul_character: strip
tables:
  things:
    include_base: true
    export_order: 0
    force_reimport: true
    truncate_before_import: true
    date_threshold: 2023-06-01T12:00:00Z
    propagate_deletes: true
`);
    assert.deepEqual(m.settings, { timezone: 'UTC', batchSize: 50, dateThreshold: new Date('2024-01-31T00:00:00Z'), watermarkMarginSeconds: 0, nulCharacter: 'strip' });
    const t = m.tables.get('things')!;
    assert.equal(t.dateThreshold?.toISOString(), '2023-06-01T12:00:00.000Z');
    assert.equal(t.forceReimport && t.truncateBeforeImport && t.propagateDeletes, true);
    const g = await fromText('settings: { date_threshold: 2024-01-31 }\ntables: { t: { include_base: true, export_order: 1 } }\n', { globalDateThreshold: new Date('2020-01-01T00:00:00Z') });
    assert.equal(g.settings.dateThreshold?.toISOString(), '2020-01-01T00:00:00.000Z');
    const n = await fromText('settings: { date_threshold: 2024-01-31 }\ntables: { t: { include_base: true, export_order: 1 } }\n', { globalDateThreshold: null });
    assert.equal(n.settings.dateThreshold?.toISOString(), '2024-01-31T00:00:00.000Z');
  });

  test('a server filter is the OR of the filters when every table of a collection has one', async () => {
    const m = await fromText(`tables:
  menus:
    mongo_collection: events
    filter: { __t: menu }
    include_base: true
    export_order: 1
  webinars:
    mongo_collection: events
    filter: { __t: { $in: [webinar, live] }, company: { $exists: true }, "settings.visible": { $ne: false } }
    include_base: true
    export_order: 1
`);
    assert.equal(m.collections.length, 1);
    assert.deepEqual(m.collections[0]!.serverFilter, {
      $or: [{ __t: 'menu' }, { __t: { $in: ['webinar', 'live'] }, company: { $exists: true }, 'settings.visible': { $ne: false } }],
    });
    assert.deepEqual(m.tables.get('webinars')!.filter!.conditions, {
      __t: { op: 'in', values: ['webinar', 'live'] },
      company: { op: 'exists', value: true },
      'settings.visible': { op: 'ne', value: false },
    });
    // Filter fields are projected (transform re-checks each table's filter), dotted ones by their first segment.
    assert.deepEqual(m.collections[0]!.projection, ['_id', 'creation_date', 'update_date', '__t', 'company', 'settings']);
    const single = await fromText('tables:\n  menus:\n    mongo_collection: events\n    filter: { __t: menu }\n    include_base: true\n    export_order: 1\n');
    assert.deepEqual(single.collections[0]!.serverFilter, { __t: 'menu' });
  });

  test('explode merged by upsert, columns read from the parent, dotted paths, self-references', async () => {
    const m = await fromText(`tables:
  people:
    include_base: true
    additional_columns:
      - name: city
        sql_type: VARCHAR(100)
      - name: mentor_id
        sql_type: VARCHAR
        foreign_key: people(id)
    additional_mappings:
      address.city: city
      mentor: mentor_id
    export_order: 1
  people_tags:
    mongo_collection: people
    strategy: explode
    parent_column: person_id
    merge: upsert
    arrays:
      - field: profile.tags
        item_column: tag
    columns:
      - name: person_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: people(id)
      - name: tag
        sql_type: VARCHAR
        nullable: false
      - name: seen_at
        sql_type: TIMESTAMP
    explicit_mappings:
      update_date: seen_at
    unique_constraints:
      - [person_id, tag]
    export_order: 1
`);
    const tags = m.tables.get('people_tags')!;
    assert.equal(tags.explode!.merge, 'upsert');
    assert.deepEqual(tags.mergeKey, ['person_id', 'tag']);
    assert.deepEqual(tags.columns[2]!.source, { kind: 'field', path: 'update_date' });
    assert.deepEqual(m.loadOrder, ['people', 'people_tags']);
    assert.deepEqual(m.collections[0]!.projection, ['_id', 'creation_date', 'update_date', 'address', 'mentor', 'profile']);
    assert.deepEqual(m.tables.get('people')!.columns[3]!.source, { kind: 'field', path: 'address.city' });
    // Merged by upsert on its unique constraint, but still owned by its parent document.
    assert.equal(tags.mergeKind, 'upsert');
    assert.equal(tags.documentKey, 'person_id');
  });

  test('an upsert table keyed by something else than the _id has no document key', async () => {
    const m = await fromText(`tables:
  codes:
    columns:
      - { name: code, sql_type: VARCHAR, primary_key: true }
      - { name: ref, sql_type: VARCHAR }
    additional_mappings:
      _id: ref
  mapped:
    columns:
      - { name: key, sql_type: VARCHAR, primary_key: true }
    additional_mappings:
      _id: key
  pair:
    columns:
      - { name: a, sql_type: VARCHAR, primary_key: true }
      - { name: b, sql_type: VARCHAR, primary_key: true }
    additional_mappings:
      _id: a
`);
    assert.equal(m.tables.get('codes')!.documentKey, null);
    assert.equal(m.tables.get('codes')!.mergeKind, 'upsert');
    assert.equal(m.tables.get('mapped')!.documentKey, 'key', 'a primary key fed by _id under another name');
    assert.equal(m.tables.get('pair')!.documentKey, 'a', 'a composite primary key with the _id column: one row per document, named by it');
  });

  test('a table keyed by its own primary key (no include_base), the "order" column and a quote in a name', async () => {
    const m = await loadPipeline(path.join(FIXTURES, 'odd-names.yaml'));
    const t = m.tables.get('weird "table"')!;
    assert.deepEqual(t.primaryKey, ['code']);
    assert.deepEqual(
      t.columns.map((c) => c.name),
      ['code', 'order', 'say "hi"'],
    );
    assert.equal(t.columns[0]!.nullable, false);
  });

  test('an omitted export_order is the greatest of the referenced tables (1 without references)', async () => {
    const m = await fromText(`tables:
  links:
    include_base: true
    additional_columns: [{ name: b_id, sql_type: VARCHAR, foreign_key: b(id) }, { name: a_id, sql_type: VARCHAR, foreign_key: a(id) }]
  a:
    include_base: true
  b:
    include_base: true
    export_order: 4
`);
    assert.deepEqual(
      m.loadOrder.map((n) => [n, m.tables.get(n)!.exportOrder]),
      [
        ['a', 1],
        ['b', 4],
        ['links', 4],
      ],
    );
  });

  test('load order: foreign keys first, then export_order, then file order', async () => {
    const m = await fromText(`tables:
  c:
    include_base: true
    additional_columns: [{ name: b_id, sql_type: VARCHAR, foreign_key: b(id) }]
    export_order: 5
  b:
    include_base: true
    export_order: 5
  a:
    include_base: true
    export_order: 1
  d:
    include_base: true
    export_order: 5
`);
    assert.deepEqual(m.loadOrder, ['a', 'b', 'c', 'd']);
  });
});

describe('sql types', () => {
  test('parse and print the canonical spelling', () => {
    const cases: [string, string][] = [
      ['varchar', 'VARCHAR'],
      ['VARCHAR( 255 )', 'VARCHAR(255)'],
      ['character varying(10)', 'VARCHAR(10)'],
      ['text', 'TEXT'],
      ['int', 'INTEGER'],
      ['SMALLINT', 'SMALLINT'],
      ['bigint', 'BIGINT'],
      ['serial', 'SERIAL'],
      ['numeric', 'NUMERIC'],
      ['NUMERIC(10, 2)', 'NUMERIC(10,2)'],
      ['decimal(5)', 'NUMERIC(5,0)'],
      ['bool', 'BOOLEAN'],
      ['timestamp', 'TIMESTAMP'],
      ['date', 'DATE'],
      ['jsonb', 'JSONB'],
    ];
    for (const [input, text] of cases) assert.equal(sqlTypeText(parseSqlType(input)!), text, input);
    for (const bad of ['VARCHAR(0)', 'VARCHR', 'NUMERIC(2,3)', 'json', 'timestamptz', '']) assert.equal(parseSqlType(bad), null, bad);
  });

  test('catalog spellings map to the canonical ones', () => {
    assert.equal(canonicalCatalogType('character varying(255)', null), 'VARCHAR(255)');
    assert.equal(canonicalCatalogType('character varying', null), 'VARCHAR');
    assert.equal(canonicalCatalogType('timestamp without time zone', null), 'TIMESTAMP');
    assert.equal(canonicalCatalogType('integer', "nextval('t_id_seq'::regclass)"), 'SERIAL');
    assert.equal(canonicalCatalogType('integer', null), 'INTEGER');
    assert.equal(canonicalCatalogType('numeric(10,2)', null), 'NUMERIC(10,2)');
    assert.equal(canonicalCatalogType('timestamp with time zone', null), 'TIMESTAMP WITH TIME ZONE');
  });
});
