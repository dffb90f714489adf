// One test per validation error of pipeline.yaml: each bad file must fail with a ConfigError whose
// finding names the offending key and the line it is on (the line marked `# HERE` in the fixture),
// and whose rendered message carries `file:line:col`.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { ConfigError } from '../../errors/etl-error.ts';
import { formatPath, type ConfigFinding } from '../../errors/config-finding.ts';

let dir = '';
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'etl-validate-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

// A small valid pipeline the cases below break one thing at a time.
const companies = `
  companies:
    include_base: true
    additional_columns:
      - name: name
        sql_type: VARCHAR(255)
        nullable: false
    export_order: 1`;

const users = `
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
        foreign_key: companies(id)
        on_missing: set_null
    additional_mappings:
      company: company_id
    export_order: 2`;

let counter = 0;
async function load(yaml: string): Promise<{ error: ConfigError; file: string }> {
  const file = path.join(dir, `case-${++counter}.yaml`);
  await writeFile(file, yaml);
  try {
    await loadPipeline(file);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return { error, file };
  }
  assert.fail(`expected ${file} to be rejected:\n${yaml}`);
}

/** Line (1-based) of the line holding `# HERE`. */
function markedLine(yaml: string): number {
  const i = yaml.split('\n').findIndex((l) => l.includes('# HERE'));
  assert.ok(i >= 0, 'fixture has no # HERE marker');
  return i + 1;
}

interface Expect {
  readonly code: string;
  /** The key the finding must name (in its path or message). */
  readonly key: string;
  /** Text the message must hold. */
  readonly says: readonly (string | RegExp)[];
}

async function expectFinding(yaml: string, expect: Expect): Promise<ConfigFinding> {
  const { error, file } = await load(yaml);
  const line = markedLine(yaml);
  const finding = error.findings.find((f) => f.code === expect.code);
  assert.ok(finding, `no ${expect.code} finding; got:\n${error.message}`);
  assert.equal(finding.line, line, `finding on line ${finding.line}, expected ${line}: ${finding.message}`);
  assert.equal(finding.file, file);
  const where = `${formatPath(finding.path)} ${finding.message}`;
  assert.ok(where.includes(expect.key), `finding does not name "${expect.key}": ${where}`);
  for (const s of expect.says) {
    if (typeof s === 'string') assert.ok(finding.message.includes(s), `message lacks "${s}": ${finding.message}`);
    else assert.match(finding.message, s);
  }
  // The rendered error names the file and the line, as the user sees it.
  assert.ok(error.message.includes(`${file}:${line}:`), error.message);
  return finding;
}

const explodeColumns = `
    columns:
      - name: user_id
        sql_type: VARCHAR
        nullable: false
      - name: target_id
        sql_type: VARCHAR
        nullable: false
      - name: type
        sql_type: VARCHAR(50)
        nullable: false
    unique_constraints:
      - [user_id, target_id, type]
    export_order: 3`;

const dedupeColumns = `
    columns:
      - name: id
        sql_type: SERIAL
        primary_key: true
      - name: user_id
        sql_type: VARCHAR
        nullable: false
      - name: day
        sql_type: DATE
        nullable: false
      - name: updated_at
        sql_type: TIMESTAMP
        nullable: false
    unique_constraints:
      - [user_id, day]
    export_order: 3`;

/**
 * One case, one bad file: the YAML (a line marked `# HERE`), the code of the finding it must raise,
 * the key that finding names, text its message holds, and where asked its exact path and column.
 */
interface Case extends Expect {
  readonly name: string;
  readonly yaml: string;
  readonly path?: readonly (string | number)[];
  readonly col?: number;
}

const cases: readonly Case[] = [
  {
    name: 'unknown key (typo) lists the expected keys',
    yaml: `tables:${companies}
  users_targets:
    include_base: true
    columns:
      - name: type
        sql_type: VARCHAR(50)
        nullabel: false # HERE
    export_order: 2
`,
    code: 'unknown_key', key: 'nullabel', says: ['unknown key "nullabel"', 'expected one of: name, sql_type, nullable', 'did you mean "nullable"'],
    path: ['tables', 'users_targets', 'columns', 0, 'nullabel'],
    col: 9,
  },
  {
    name: 'unknown top-level key',
    yaml: `setting: {} # HERE\ntables:${companies}\n`,
    code: 'unknown_key', key: 'setting', says: ['expected one of: settings, tables'],
  },
  {
    name: 'wrong kind: a string where a boolean is expected',
    yaml: `tables:${companies}
  users:
    include_base: "yes" # HERE
    export_order: 2
`,
    code: 'wrong_kind', key: 'include_base', says: ['expected true or false', 'the string "yes"'],
  },
  {
    name: 'wrong kind: a map where a list is expected',
    yaml: `tables:${companies}
  users:
    include_base: true
    additional_columns: # HERE
      name: email
    export_order: 2
`,
    code: 'wrong_kind', key: 'additional_columns', says: ['expected a list', 'got a map'],
  },
  {
    name: 'wrong kind: export_order is not a whole number',
    yaml: `tables:\n  companies:\n    include_base: true\n    export_order: first # HERE\n`,
    code: 'wrong_kind', key: 'export_order', says: ['expected a whole number'],
  },
  {
    // Far past a year the next watermark was no date: an internal error at extract.
    name: 'out of range: a watermark margin of more than a year',
    yaml: `settings:\n  watermark_margin_seconds: 99999999999999 # HERE\ntables:\n  companies:\n    include_base: true\n    export_order: 1\n`,
    code: 'bad_value', key: 'watermark_margin_seconds', says: ['between 0 and 31536000'],
  },
  {
    name: 'missing required key: a column without sql_type',
    yaml: `tables:
  companies:
    include_base: true
    additional_columns:
      - name: name # HERE
    export_order: 1
`,
    code: 'missing_key', key: 'sql_type', says: ['missing required key "sql_type"'],
  },
  {
    name: 'unknown sql_type lists the known ones',
    yaml: `tables:
  companies:
    include_base: true
    additional_columns:
      - name: name
        sql_type: VARCHR(255) # HERE
    export_order: 1
`,
    code: 'unknown_sql_type', key: 'sql_type', says: ['unknown sql_type "VARCHR(255)"', 'VARCHAR(n)', 'TIMESTAMP', 'JSONB'],
  },
  {
    name: 'VARCHAR(n) beyond PostgreSQL\'s limit says the limit, not "unknown"',
    yaml: `tables:
  companies:
    include_base: true
    additional_columns:
      - name: name
        sql_type: VARCHAR(20000000) # HERE
    export_order: 1
`,
    code: 'sql_type_out_of_range', key: 'sql_type', says: ['sql_type "VARCHAR(20000000)": VARCHAR(n) takes n from 1 to 10485760 (PostgreSQL\'s limit)'],
  },
  {
    name: 'NUMERIC(p,s) out of range says the ranges',
    yaml: `tables:
  companies:
    include_base: true
    additional_columns:
      - name: name
        sql_type: NUMERIC(5,7) # HERE
    export_order: 1
`,
    code: 'sql_type_out_of_range', key: 'sql_type', says: ['sql_type "NUMERIC(5,7)": NUMERIC(p,s) takes p from 1 to 1000 and s from 0 to p'],
  },
  {
    name: 'foreign key to an unknown table',
    yaml: `tables:${companies}
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
        foreign_key: companys(id) # HERE
    export_order: 2
`,
    code: 'unknown_table', key: 'foreign_key', says: ['unknown table "companys"', 'did you mean "companies"'],
  },
  {
    name: 'foreign key to an unknown column',
    yaml: `tables:${companies}
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
        foreign_key: companies(uid) # HERE
    export_order: 2
`,
    code: 'unknown_column', key: 'foreign_key', says: ['unknown column "uid" of table "companies"', 'its columns: id, created_at, updated_at, name'],
  },
  {
    name: 'foreign key not written table(column)',
    yaml: `tables:${companies}
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
        foreign_key: companies.id # HERE
    export_order: 2
`,
    code: 'bad_foreign_key', key: 'foreign_key', says: ['expected "table(column)"'],
  },
  {
    name: 'foreign key to a column that is neither primary key nor unique',
    yaml: `tables:${companies}
  users:
    include_base: true
    additional_columns:
      - name: company_name
        sql_type: VARCHAR(255)
        foreign_key: companies(name) # HERE
    export_order: 2
`,
    code: 'fk_target_not_unique', key: 'foreign_key', says: ['neither the primary key nor a single-column unique constraint'],
  },
  {
    name: 'foreign key between incompatible types',
    yaml: `tables:${companies}
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: INTEGER
        foreign_key: companies(id) # HERE
    export_order: 2
`,
    code: 'fk_type_mismatch', key: 'foreign_key', says: ['INTEGER', 'VARCHAR'],
  },
  {
    name: 'on_missing: set_null on a NOT NULL column',
    yaml: `tables:${companies}
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: companies(id)
        on_missing: set_null # HERE
    export_order: 2
`,
    code: 'set_null_not_nullable', key: 'on_missing', says: ['set_null', 'NOT NULL', '"company_id"'],
  },
  {
    name: 'on_missing without a foreign key',
    yaml: `tables:
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
        on_missing: reject # HERE
    export_order: 2
`,
    code: 'on_missing_without_fk', key: 'on_missing', says: ['foreign_key'],
  },
  {
    name: 'unique constraint on an unknown column',
    yaml: `tables:${companies}
  links:
    columns:
      - name: a
        sql_type: VARCHAR
    unique_constraints:
      - [a, b] # HERE
    export_order: 1
`,
    code: 'unknown_column', key: 'unique_constraints', says: ['"b" is not a column of "links"', 'columns: a'],
  },
  {
    name: 'duplicate column',
    yaml: `tables:
  companies:
    include_base: true
    additional_columns:
      - name: name
        sql_type: VARCHAR(255)
      - name: name # HERE
        sql_type: TEXT
    export_order: 1
`,
    code: 'duplicate_column', key: 'name', says: ['duplicate column "name"', 'already defined at line 5'],
  },
  {
    name: 'duplicate of a base column',
    yaml: `tables:
  companies:
    include_base: true
    additional_columns:
      - name: created_at # HERE
        sql_type: TIMESTAMP
    export_order: 1
`,
    code: 'duplicate_column', key: 'created_at', says: ['already defined by include_base'],
  },
  {
    name: 'mapping to an unknown column',
    yaml: `tables:${companies}
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
    additional_mappings:
      company: compnay_id # HERE
    export_order: 2
`,
    code: 'unknown_column', key: 'company', says: ['"compnay_id" is not a column of "users"', 'did you mean "company_id"'],
  },
  {
    name: 'two fields mapped to one column',
    yaml: `tables:
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
    additional_mappings:
      company: company_id
    explicit_mappings:
      companyId: company_id # HERE
    export_order: 2
`,
    code: 'duplicate_mapping', key: 'companyId', says: ['already fed by field "company"'],
  },
  {
    name: 'explode without parent_column',
    yaml: `tables:
  users_targets: # HERE
    mongo_collection: users
    strategy: explode
    arrays:
      - field: targets
        item_column: target_id
        constants: { type: basic }${explodeColumns}
`,
    code: 'strategy_missing_key', key: 'parent_column', says: ['strategy: explode needs "parent_column"'],
  },
  {
    name: 'explode without arrays',
    yaml: `tables:
  users_targets: # HERE
    mongo_collection: users
    strategy: explode
    parent_column: user_id${explodeColumns}
`,
    code: 'strategy_missing_key', key: 'arrays', says: ['needs "arrays"'],
  },
  {
    name: 'explode array item without item_column',
    yaml: `tables:
  users_targets:
    strategy: explode
    parent_column: user_id
    arrays:
      - field: targets # HERE
        constants: { type: basic }${explodeColumns}
`,
    code: 'missing_key', key: 'item_column', says: ['missing required key "item_column"'],
  },
  {
    name: 'item_column that is not a column',
    yaml: `tables:
  users_targets:
    strategy: explode
    parent_column: user_id
    arrays:
      - field: targets
        item_column: targetid # HERE
        constants: { type: basic }${explodeColumns}
`,
    code: 'unknown_column', key: 'item_column', says: ['"targetid" is not a column', 'did you mean "target_id"'],
  },
  {
    name: 'constant column that is not a column',
    yaml: `tables:
  users_targets:
    strategy: explode
    parent_column: user_id
    arrays:
      - field: targets
        item_column: target_id
        constants: { kind: basic } # HERE${explodeColumns}
`,
    code: 'unknown_column', key: 'kind', says: ['constant column "kind" is not a column'],
  },
  {
    // YAML reads 9007199254740993 as 9007199254740992 and 007 as 7: the rows would hold another text.
    name: 'a constant number YAML does not read as written is refused, not stored as another text',
    yaml: `tables:
  users_targets:
    strategy: explode
    parent_column: user_id
    arrays:
      - field: targets
        item_column: target_id
        constants: { type: 9007199254740993 } # HERE${explodeColumns}
`,
    code: 'bad_value', key: 'type', says: ['9007199254740993', '9007199254740992', "quote it"],
  },
  {
    name: 'a constant with leading zeros is refused too',
    yaml: `tables:
  users_targets:
    strategy: explode
    parent_column: user_id
    arrays:
      - field: targets
        item_column: target_id
        constants: { type: 007 } # HERE${explodeColumns}
`,
    code: 'bad_value', key: 'type', says: ['007', 'reads it as 7'],
  },
  {
    name: 'an array that leaves a NOT NULL constant column empty',
    yaml: `tables:
  users_targets:
    strategy: explode
    parent_column: user_id
    arrays:
      - field: targets
        item_column: target_id
        constants: { type: basic }
      - field: health_targets # HERE
        item_column: target_id${explodeColumns}
`,
    code: 'constant_missing', key: 'health_targets', says: ['sets no constant for column "type"', 'NOT NULL'],
  },
  {
    name: 'explode keys on an upsert table',
    yaml: `tables:
  users:
    include_base: true
    parent_column: id # HERE
    export_order: 1
`,
    code: 'not_for_strategy', key: 'parent_column', says: ['only applies to `strategy: explode`'],
  },
  {
    name: 'dedupe without dedupe_key',
    yaml: `tables:
  users_logbook: # HERE
    strategy: dedupe
    latest_by: updated_at${dedupeColumns}
`,
    code: 'strategy_missing_key', key: 'dedupe_key', says: ['strategy: dedupe needs "dedupe_key"'],
  },
  {
    name: 'dedupe without latest_by',
    yaml: `tables:
  users_logbook: # HERE
    strategy: dedupe
    dedupe_key: [user_id, day]${dedupeColumns}
`,
    code: 'strategy_missing_key', key: 'latest_by', says: ['needs "latest_by"'],
  },
  {
    name: 'dedupe_key column that is not a column',
    yaml: `tables:
  users_logbook:
    strategy: dedupe
    dedupe_key:
      - user_id
      - date # HERE
    latest_by: updated_at${dedupeColumns}
`,
    code: 'unknown_column', key: 'dedupe_key', says: ['"date" is not a column'],
  },
  {
    name: 'dedupe_key that is no unique constraint',
    yaml: `tables:
  users_logbook:
    strategy: dedupe
    dedupe_key: [user_id] # HERE
    latest_by: updated_at${dedupeColumns}
`,
    code: 'dedupe_key_not_unique', key: 'dedupe_key', says: ['must also be the primary key or a unique constraint'],
  },
  {
    name: 'a cycle in the foreign keys is named',
    yaml: `tables:
  a:
    include_base: true
    additional_columns:
      - name: b_id
        sql_type: VARCHAR
        foreign_key: b(id) # HERE
      - name: parent_id
        sql_type: VARCHAR
        foreign_key: a(id)
    export_order: 1
  b:
    include_base: true
    additional_columns:
      - name: a_id
        sql_type: VARCHAR
        foreign_key: a(id)
    export_order: 1
`,
    code: 'fk_cycle', key: 'foreign_key', says: ['a → b → a'],
  },
  {
    name: 'export_order that contradicts the foreign keys',
    yaml: `tables:${companies}
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
        foreign_key: companies(id)
    export_order: 0 # HERE
`,
    code: 'export_order_conflict', key: 'export_order', says: ['"users" before "companies" (export_order 1)', 'foreign_key at line 14', 'at least 1'],
    path: ['tables', 'users', 'export_order'],
  },
  {
    name: 'truncate_before_import without force_reimport',
    yaml: `tables:
  companies:
    include_base: true
    truncate_before_import: true # HERE
    export_order: 1
`,
    code: 'truncate_without_force', key: 'truncate_before_import', says: ['force_reimport: true'],
  },
  {
    name: 'a table with neither primary key nor unique constraint',
    yaml: `tables:
  notes: # HERE
    columns:
      - name: text
        sql_type: TEXT
    export_order: 1
`,
    code: 'no_key', key: 'notes', says: ['neither a primary key nor a unique constraint'],
  },
  {
    name: 'primary_key on a table with include_base',
    yaml: `tables:
  companies:
    include_base: true
    additional_columns:
      - name: code
        sql_type: VARCHAR
        primary_key: true # HERE
    export_order: 1
`,
    code: 'primary_key_with_base', key: 'primary_key', says: ['include_base already makes `id` the primary key'],
  },
  {
    name: 'an invalid timezone',
    yaml: `settings:\n  timezone: Europe/Pariss # HERE\ntables:${companies}\n`,
    code: 'bad_timezone', key: 'timezone', says: ['unknown time zone "Europe/Pariss"', 'did you mean "Europe/Paris"'],
  },
  {
    name: 'a bad settings value',
    yaml: `settings:\n  nul_character: drop # HERE\ntables:${companies}\n`,
    code: 'bad_value', key: 'nul_character', says: ['expected one of: reject, strip'],
  },
  {
    name: 'a number too large for any number is said as written, not as Infinity (settings)',
    yaml: `settings:\n  batch_size: 1${'0'.repeat(400)} # HERE\ntables:${companies}\n`,
    code: 'wrong_kind', key: 'batch_size', says: [`got the number 1${'0'.repeat(400)}`],
  },
  {
    name: 'a bad date_threshold',
    yaml: `settings:\n  date_threshold: last year # HERE\ntables:${companies}\n`,
    code: 'bad_value', key: 'date_threshold', says: ['2024-01-31'],
  },
  {
    name: 'an unknown strategy',
    yaml: `tables:
  companies:
    include_base: true
    strategy: merge # HERE
    export_order: 1
`,
    code: 'bad_value', key: 'strategy', says: ['expected one of: upsert, explode, dedupe'],
  },
  {
    name: 'a bad filter operator',
    yaml: `tables:
  companies:
    include_base: true
    filter:
      kind: { $gt: 3 } # HERE
    export_order: 1
`,
    code: 'bad_filter', key: '$gt', says: ['unknown filter operator "$gt"', '$in'],
  },
  {
    name: 'a filter operator with the wrong argument',
    yaml: `tables:
  companies:
    include_base: true
    filter: { kind: { $in: menu } } # HERE
    export_order: 1
`,
    code: 'bad_filter', key: '$in', says: ['$in expects a list of values'],
  },
  {
    // YAML reads 9007199254740993 as the double 9007199254740992: the filter would match another number.
    name: 'a filter number beyond 2^53 − 1 is refused, not rounded to a number it was not',
    yaml: `tables:
  companies:
    include_base: true
    filter: { code: 9007199254740993 } # HERE
    export_order: 1
`,
    code: 'bad_filter', key: 'code', says: ['9007199254740993', 'cannot be matched exactly', '9007199254740991', 'quote it'],
  },
  {
    name: 'a filter number too large for any number is said as written, not as Infinity',
    yaml: `tables:
  companies:
    include_base: true
    filter:
      code: { $in: [1, 1e400] } # HERE
    export_order: 1
`,
    code: 'bad_filter', key: '$in', says: ['1e400'],
  },
  {
    name: 'a table name reserved for the state tables',
    yaml: `tables:\n  etl_runs: # HERE\n    include_base: true\n    export_order: 1\n`,
    code: 'reserved_table', key: 'etl_runs', says: ['reserved'],
  },
  {
    // etl schema made the two one: the pipeline's columns and primary key added to the state table.
    name: 'the state table of gone documents is reserved too',
    yaml: `tables:\n  etl_gone: # HERE\n    include_base: true\n    export_order: 1\n`,
    code: 'reserved_table', key: 'etl_gone', says: ['reserved'],
  },
  {
    name: 'so is every etl_ name: the keys and indexes of the state tables, and state tables to come',
    yaml: `tables:\n  etl_pending_pkey: # HERE\n    include_base: true\n    export_order: 1\n`,
    code: 'reserved_table', key: 'etl_pending_pkey', says: ['reserved', 'etl_'],
  },
  {
    // etl schema failed half-way: relation "a_b_c_key" already exists.
    name: 'two unique constraints etl would name alike (a_b UNIQUE (c), a UNIQUE (b_c)): both named',
    yaml: `tables:
  a_b:
    include_base: true
    additional_columns:
      - name: c
        sql_type: VARCHAR
    unique_constraints:
      - [c]
  a: # HERE
    include_base: true
    additional_columns:
      - name: b_c
        sql_type: VARCHAR
    unique_constraints:
      - [b_c]
`,
    code: 'name_collision', key: 'a', says: ['the unique constraint (b_c) of table "a" would be named "a_b_c_key", as is the unique constraint (c) of table "a_b"'],
  },
  {
    name: 'a table with the name of another table\'s primary key',
    yaml: `tables:\n  users:\n    include_base: true\n  users_pkey: # HERE\n    include_base: true\n`,
    code: 'name_collision', key: 'users_pkey', says: ['table "users_pkey" has the name of the primary key of table "users"'],
  },
  {
    // extract wrote the documents of "c.rejects" over the rejects file of "c" (or the reverse), and
    // transform then called the run damaged.
    name: 'a collection whose staged file is another collection\'s rejects file',
    yaml: `tables:\n  a:\n    mongo_collection: c\n    include_base: true\n  b:\n    mongo_collection: c.rejects # HERE\n    include_base: true\n`,
    code: 'file_name_collision', key: 'mongo_collection', says: ['mongo_collection "c.rejects" of table "b" would be staged as extract/c.rejects.ndjson, the extract rejects file of collection "c" (table "a")'],
  },
  {
    name: 'a table whose CSV is another table\'s keys file',
    yaml: `tables:\n  t:\n    include_base: true\n  t.keys: # HERE\n    mongo_collection: other\n    include_base: true\n`,
    code: 'file_name_collision', key: 't.keys', says: ['table "t.keys" would be staged as transform/t.keys.csv, the keys file of table "t"'],
  },
  {
    // etl schema failed: cannot open relation "etl_contrib_a_key" (an index, not a table).
    name: 'two dedupe tables whose contributions table and index etl would name alike',
    yaml: `tables:
  a:
    mongo_collection: logs
    strategy: dedupe
    dedupe_key: [user_id]
    latest_by: updated_at
    columns:
      - name: user_id
        sql_type: VARCHAR
        primary_key: true
      - name: updated_at
        sql_type: TIMESTAMP
        nullable: false
  a_key: # HERE
    mongo_collection: logs
    strategy: dedupe
    dedupe_key: [user_id]
    latest_by: updated_at
    columns:
      - name: user_id
        sql_type: VARCHAR
        primary_key: true
      - name: updated_at
        sql_type: TIMESTAMP
        nullable: false
`,
    code: 'name_collision', key: 'a_key', says: ['the contributions table of "a_key" would be named "etl_contrib_a_key", as is the index of the contributions table of "a"'],
  },
  {
    name: 'YAML nested a hundred thousand levels deep: said in words, not in the JavaScript engine\'s',
    yaml: `tables:\n  t:\n    include_base: true\n    filter: ${'['.repeat(100_000)}${']'.repeat(100_000)} # HERE\n`,
    code: 'yaml_syntax', key: 'nested', says: ['the YAML is nested too deeply here (thousands of levels): a pipeline file nests a few'],
  },
  {
    name: 'YAML syntax errors (a table defined twice) carry their line',
    yaml: `tables:${companies}\n  companies: # HERE\n    include_base: true\n    export_order: 1\n`,
    code: 'yaml_syntax', key: 'companies', says: ['the key "companies" is given twice in this map'],
  },
  {
    name: 'a key given twice in one map is named, with what to do',
    yaml: `tables:
  companies:
    include_base: true
    export_order: 1
    export_order: 2 # HERE
`,
    code: 'yaml_syntax', key: 'export_order', says: ['"export_order" is given twice in this map', 'keep one'],
  },
  {
    name: 'a tab that indents a line: said with what to do',
    yaml: `tables:
  companies:
\tinclude_base: true # HERE
`,
    code: 'yaml_syntax', key: 'tab', says: ['indent with spaces'],
  },
  {
    name: 'a second YAML document in the file: said in words, not in the parser\'s (no API name)',
    yaml: `tables:${companies}
--- # HERE
tables: {}
`,
    code: 'yaml_syntax', key: '---', says: ['a second YAML document starts here (---): a pipeline file holds one'],
  },
];

describe('pipeline.yaml validation errors name the key and its line', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const f = await expectFinding(c.yaml, c);
      if (c.path) assert.deepEqual(f.path, c.path);
      if (c.col !== undefined) assert.equal(f.col, c.col);
    });
  }

  test('every finding is reported at once, sorted by line', async () => {
    const { error } = await load(`settings:
  batch_size: 0
tables:
  companies:
    include_base: yes
    export_order: 1
  users:
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
        foreign_key: nope(id)
    export_order: 2
`);
    assert.deepEqual(
      error.findings.map((f) => [f.line, f.code]),
      [
        [2, 'bad_value'],
        [5, 'wrong_kind'],
        [12, 'unknown_table'],
      ],
    );
    assert.match(error.message, /3 errors/);
  });

  test('a missing file is a ConfigError naming it', async () => {
    const missing = path.join(dir, 'nope.yaml');
    await assert.rejects(loadPipeline(missing), (e: unknown) => e instanceof ConfigError && e.message.includes(missing) && e.exitCode === 2);
  });
});
