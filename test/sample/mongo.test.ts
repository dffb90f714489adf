// `etl sample` into a real MongoDB-protocol server (FerretDB): every variation a production Wappizy
// database holds is present in a small sample, asserted by querying the server afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MongoClient, ObjectId, type Db, type Document } from 'mongodb';
import { useServers } from '../harness/index.ts';
import { generateSample, SAMPLE_COLLECTIONS } from '../../sample/generate.ts';
import { etl } from '../harness/cli.ts';

const SCALE = 2000;
const SEED = 11;

const parisWall = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris', hourCycle: 'h23', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const isParisMidnight = (d: Date) => parisWall.format(d) === '00:00:00' && d.getUTCMilliseconds() === 0;

describe('etl sample into FerretDB', () => {
  const servers = useServers({ postgres: false });
  let client: MongoClient;
  let db: Db;
  const all = new Map<string, Document[]>();
  const ids = new Map<string, Set<string>>();

  after(() => client?.close());
  before(async () => {
    const { name, url } = await servers.mongo.newDatabase('etl sample variations');
    const r = await etl(['sample', '--scale', String(SCALE), '--seed', String(SEED), '--mongo-url', url]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${SCALE.toLocaleString('en-US')} documents written`));
    client = new MongoClient(url);
    db = client.db(name);
    for (const c of SAMPLE_COLLECTIONS) {
      const docs = await db.collection(c).find({}).toArray();
      all.set(c, docs);
      ids.set(c, new Set(docs.map((d) => String(d._id))));
    }
  });

  const docs = (c: string) => all.get(c)!;
  const count = (c: string, filter: Document) => db.collection(c).countDocuments(filter);

  test('every collection the pipeline reads, with the planned counts', async () => {
    const plan = generateSample({ scale: SCALE, seed: SEED }).plan;
    let total = 0;
    for (const c of SAMPLE_COLLECTIONS) {
      const n = await db.collection(c).countDocuments({});
      assert.equal(n, plan[c], c);
      total += n;
    }
    assert.equal(total, SCALE);
  });

  test('every document has _id, creation_date ≤ update_date and __v; _id time = creation second', () => {
    for (const c of SAMPLE_COLLECTIONS) {
      for (const d of docs(c)) {
        assert.ok(d._id instanceof ObjectId, `${c}._id`);
        assert.ok(d.creation_date instanceof Date && d.update_date instanceof Date, `${c} dates`);
        assert.ok(d.update_date.getTime() >= d.creation_date.getTime(), `${c} update ≥ creation`);
        assert.equal(typeof d.__v, 'number', `${c}.__v`);
        assert.equal(d._id.getTimestamp().getTime(), Math.floor(d.creation_date.getTime() / 1000) * 1000, `${c} _id timestamp`);
      }
    }
  });

  test('users: registered_events mixes plain ids and {_id, event, date}, even in one array', async () => {
    assert.ok((await count('users', { 'registered_events.event': { $exists: true } })) > 0, 'subdocument items');
    const users = docs('users');
    const hasPlain = (u: Document) => (u.registered_events as unknown[]).some((x) => x instanceof ObjectId);
    const hasSub = (u: Document) => (u.registered_events as Document[]).some((x) => !(x instanceof ObjectId) && x.event instanceof ObjectId && x.date instanceof Date && x._id instanceof ObjectId);
    assert.ok(users.some((u) => hasPlain(u) && !hasSub(u)), 'plain-only arrays (old documents)');
    assert.ok(users.some((u) => hasSub(u) && !hasPlain(u)), 'subdocument-only arrays (current documents)');
    assert.ok(users.some((u) => hasPlain(u) && hasSub(u)), 'mixed arrays');
    assert.ok((await count('users', { registered_events: { $size: 0 } })) > 0, 'empty arrays');
  });

  test('users: legacy targets[] vs objective_targets[], specificity and health targets, optional fields', async () => {
    const legacy = await count('users', { targets: { $exists: true } });
    const current = await count('users', { objective_targets: { $exists: true } });
    assert.ok(legacy > 0 && current > 0, `legacy ${legacy}, current ${current}`);
    assert.equal(await count('users', { targets: { $exists: true }, objective_targets: { $exists: true } }), 0);
    assert.ok((await count('users', { 'specificity_targets.0': { $exists: true } })) > 0);
    assert.ok((await count('users', { 'health_targets.0': { $exists: true } })) > 0);
    const n = docs('users').length;
    for (const field of ['insurer', 'population', 'sso_id']) {
      const present = await count('users', { [field]: { $exists: true } });
      assert.ok(present > 0 && present < n * 0.2, `${field}: present on ${present} of ${n} (mostly absent)`);
    }
    for (const field of ['picture', 'cguAccepted', 'password', 'phone', 'birthday', 'company']) {
      assert.ok((await count('users', { [field]: { $exists: true } })) > 0, field);
    }
  });

  test('users: unique lower-case emails, French phones, every role', async () => {
    const users = docs('users');
    const emails = users.map((u) => u.email as string);
    assert.equal(new Set(emails).size, emails.length, 'unique');
    for (const e of emails) assert.equal(e, e.toLowerCase());
    for (const e of emails) assert.match(e, /^[^@\s]+@[a-z0-9.-]+\.[a-z]+$/);
    for (const u of users) if (u.phone !== undefined) assert.match(u.phone, /^\+33[67]\d{8}$/);
    assert.deepEqual((await db.collection('users').distinct('role')).sort(), ['ADMIN', 'CUSTOMER', 'DIET', 'EXTERNAL_DIET', 'RH', 'SUPER_ADMIN', 'SUPPORT']);
    const indexes = await db.collection('users').indexes();
    assert.ok(indexes.some((i) => i.name === 'email_1' && i.unique === true), 'unique email index');
  });

  test('day-only dates at Paris midnight, winter (…T23:00Z) and summer (…T22:00Z)', () => {
    const samples: [string, string][] = [
      ['users', 'birthday'],
      ['days', 'date'],
      ['coachinglogbooks', 'day'],
    ];
    for (const [c, field] of samples) {
      const dates = docs(c).map((d) => d[field]).filter((v): v is Date => v instanceof Date);
      assert.ok(dates.length > 0, `${c}.${field}`);
      for (const d of dates) assert.ok(isParisMidnight(d), `${c}.${field} ${d.toISOString()}`);
      assert.ok(dates.some((d) => d.toISOString().endsWith('T23:00:00.000Z')), `${c}.${field} winter`);
      assert.ok(dates.some((d) => d.toISOString().endsWith('T22:00:00.000Z')), `${c}.${field} summer`);
    }
    assert.ok(docs('users').some((u) => u.birthday === undefined), 'some users without birthday');
  });

  test('events: four discriminators; company only on collective challenges, companies[] on webinars', async () => {
    assert.deepEqual((await db.collection('events').distinct('__t')).sort(), ['collectiveChallenge', 'individualChallenge', 'menu', 'webinar']);
    assert.equal(await count('events', { company: { $exists: true }, __t: { $ne: 'collectiveChallenge' } }), 0);
    assert.ok((await count('events', { company: { $exists: true }, __t: 'collectiveChallenge' })) > 0);
    assert.equal(await count('events', { __t: 'webinar', companies: { $exists: false } }), 0);
    assert.equal(await count('events', { companies: { $exists: true }, __t: { $ne: 'webinar' } }), 0);
    for (const e of docs('events')) assert.ok(e.start_date instanceof Date && e.end_date instanceof Date && e.end_date > e.start_date);
  });

  test('menurecipes: string day/period, unique per (menu, day, period), a recipe twice in one menu', () => {
    const mr = docs('menurecipes');
    assert.ok(mr.length > 0);
    const slots = new Set<string>();
    const pairs = new Map<string, number>();
    const menus = new Set(docs('events').filter((e) => e.__t === 'menu').map((e) => String(e._id)));
    for (const d of mr) {
      assert.ok(['0', '1', '2', '3', '4', '5', '6'].includes(d.day), `day ${d.day}`);
      assert.ok(d.period === '0' || d.period === '1', `period ${d.period}`);
      const slot = `${d.menu}/${d.day}/${d.period}`;
      assert.ok(!slots.has(slot), `duplicate slot ${slot}`);
      slots.add(slot);
      const pair = `${d.menu}/${d.recipe}`;
      pairs.set(pair, (pairs.get(pair) ?? 0) + 1);
      if (!String(d.menu).startsWith('dangling') && ids.get('events')!.has(String(d.menu))) assert.ok(menus.has(String(d.menu)), 'menu refs point at menu events');
    }
    assert.ok([...pairs.values()].some((n) => n >= 2), 'the same recipe twice in one menu');
  });

  test('coachinglogbooks: ≈1.4 % without user, some without coaching, several per (user, day)', async () => {
    const total = docs('coachinglogbooks').length;
    const noUser = await count('coachinglogbooks', { user: { $exists: false } });
    assert.ok(noUser > 0 && noUser / total < 0.04, `${noUser} of ${total} without user`);
    assert.ok((await count('coachinglogbooks', { coaching: { $exists: false } })) > 0, 'some without coaching');
    const perKey = new Map<string, number>();
    for (const d of docs('coachinglogbooks')) {
      if (!d.user) continue;
      const k = `${d.user}/${d.day.toISOString()}`;
      perKey.set(k, (perKey.get(k) ?? 0) + 1);
    }
    assert.ok([...perKey.values()].filter((n) => n > 1).length > 0, 'several documents for one (user, day)');
  });

  test('coachings, quizzs, contents: statuses, types and optional fields per the data model', async () => {
    assert.deepEqual((await db.collection('coachings').distinct('status')).sort(), [
      'COACHING_STATUS_DROPPED',
      'COACHING_STATUS_FINISHED',
      'COACHING_STATUS_NOT_STARTED',
      'COACHING_STATUS_STARTED',
      'COACHING_STATUS_STOPPED',
    ]);
    for (const field of ['diet', 'assessment_quizz']) {
      const present = await count('coachings', { [field]: { $exists: true } });
      assert.ok(present > 0 && present < docs('coachings').length, `${field} often absent (${present})`);
    }
    assert.ok((await count('coachings', { health_reason: { $exists: true } })) > 0, 'legacy health_reason');
    assert.ok((await count('coachings', { 'reasons.0': { $exists: true } })) > 0);
    const quizzTypes = await db.collection('quizzs').distinct('type');
    for (const t of ['LOGBOOK', 'PROGRESS', 'PATIENT', 'ASSESSMENT', 'IMPACT', 'HEALTH']) assert.ok(quizzTypes.includes(`QUIZZ_TYPE_${t}`), t);
    assert.equal((await db.collection('quizzquestions').distinct('type')).length, 8);
    assert.deepEqual((await db.collection('contents').distinct('type')).sort(), ['ARTICLE', 'DOCUMENT', 'INFOGRAPHY', 'PODCAST', 'VIDEO']);
    assert.ok((await count('contents', { viewed_by: { $size: 0 } })) > 0, 'contents never viewed');
    assert.ok((await count('contents', { 'viewed_by.0': { $exists: true } })) > 0);
    assert.ok((await count('days', { contents: { $size: 0 } })) > 0, 'days without contents');
    assert.ok((await count('days', { 'contents.0': { $exists: true } })) > 0);
    assert.ok((await count('categories', { type: { $exists: false } })) > 0, 'categories.type optional');
  });

  test('userquizzquestions: only the answer field of the question type; enum → ObjectId, numeric → Number', async () => {
    const typeOf = new Map(docs('quizzquestions').map((q) => [String(q._id), q.type as string]));
    const fieldOf: Record<string, string | null> = {
      QUIZZ_QUESTION_TYPE_BOOLEAN: 'boolean_answer',
      QUIZZ_QUESTION_TYPE_SCALE_1_10: 'numeric_answer',
      QUIZZ_QUESTION_TYPE_NUMERIC: 'numeric_answer',
      QUIZZ_QUESTION_TYPE_TEXT: 'text_answer',
      QUIZZ_QUESTION_TYPE_DOCUMENT: 'document_answer',
      QUIZZ_QUESTION_TYPE_ENUM_SINGLE: 'single_enum_answer',
      QUIZZ_QUESTION_TYPE_ENUM_MULTIPLE: 'multiple_enum_answer',
      QUIZZ_QUESTION_TYPE_TEXT_MULTIPLE: null,
    };
    const answerFields = ['boolean_answer', 'numeric_answer', 'text_answer', 'document_answer', 'single_enum_answer', 'multiple_enum_answer'];
    const seen = new Set<string>();
    for (const d of docs('userquizzquestions')) {
      const present = answerFields.filter((f) => f in d);
      assert.ok(present.length <= 1, `one answer field at most: ${present}`);
      const type = typeOf.get(String(d.quizz_question));
      if (type !== undefined && present.length === 1) assert.equal(present[0], fieldOf[type], `${type} answered in ${present[0]}`);
      for (const f of present) seen.add(f);
    }
    for (const f of answerFields) assert.ok(seen.has(f), `some answers in ${f}`);
    assert.equal(await count('userquizzquestions', { single_enum_answer: { $exists: true, $not: { $type: 'objectId' } } }), 0);
    assert.equal(await count('userquizzquestions', { numeric_answer: { $exists: true, $not: { $type: 'number' } } }), 0);
    assert.ok((await count('userquizzquestions', { numeric_answer: { $type: 'double' } })) > 0, 'non-integer numbers too');
    assert.ok((await count('userquizzquestions', { comment: '' })) > 0, 'empty-string comments (not absent)');
  });

  test('appointments: validated true/false/absent, order null on old documents and -1 by default', async () => {
    assert.ok((await count('appointments', { validated: true })) > 0);
    assert.ok((await count('appointments', { validated: false })) > 0);
    assert.ok((await count('appointments', { validated: { $exists: false } })) > 0);
    assert.ok((await count('appointments', { order: { $type: 'null' } })) > 0, 'order null');
    assert.ok((await count('appointments', { order: -1 })) > 0, 'order -1');
    assert.ok((await count('appointments', { order: { $gt: 0 } })) > 0, 'order set');
  });

  test('numbers stored as strings where the app does so', async () => {
    assert.ok((await count('appointmenttypes', { smartagenda_id: { $type: 'string' } })) > 0);
    assert.ok((await count('appointmenttypes', { smartagenda_id: { $type: 'number' } })) > 0);
    assert.ok((await count('offers', { duration: { $type: 'string' } })) > 0);
    assert.ok((await count('offers', { duration: { $type: 'number' } })) > 0);
    for (const o of docs('offers')) if (typeof o.duration === 'string') assert.match(o.duration, /^\d+$/);
  });

  test('hostile strings survive: quotes, commas, newlines, tabs, backslashes, non-Latin text, emoji', () => {
    const texts: string[] = [];
    for (const c of ['messages', 'recipes', 'items', 'users', 'contents', 'appointmenttypes']) {
      for (const d of docs(c)) for (const v of Object.values(d)) if (typeof v === 'string') texts.push(v);
    }
    const has = (re: RegExp) => texts.some((t) => re.test(t));
    for (const [what, re] of [
      ['double quote', /"/],
      ['single quote', /'/],
      ['comma', /,/],
      ['newline', /\n/],
      ['tab', /\t/],
      ['backslash', /\\/],
      ['accent', /é/],
      ['Japanese', /[\u3040-\u30ff\u4e00-\u9fff]/],
      ['Arabic', /[\u0600-\u06ff]/],
      ['emoji', /\p{Extended_Pictographic}/u],
      ['a lone \\.', /^\\\.$/],
    ] as const) {
      assert.ok(has(re), what);
    }
    assert.ok(docs('recipes').some((r) => r.name === 'é'.repeat(255)), '255 two-byte characters');
  });

  test('dangling references at a small rate, in arrays and in single references', () => {
    const checks: [string, string, string][] = [
      ['users', 'registered_events', 'events'],
      ['users', 'specificity_targets', 'targets'],
      ['users', 'company', 'companies'],
      ['contents', 'viewed_by', 'users'],
      ['quizzs', 'questions', 'quizzquestions'],
      ['userquizzs', 'questions', 'userquizzquestions'],
      ['days', 'contents', 'contents'],
      ['days', 'main_logbooks', 'userquizzs'],
      ['days', 'period', 'periods'],
      ['coachinglogbooks', 'user', 'users'],
      ['messages', 'sender', 'users'],
      ['messages', 'receiver', 'users'],
      ['userquizzquestions', 'quizz_question', 'quizzquestions'],
      ['appointments', 'coaching', 'coachings'],
      ['items', 'userQuizzQuestion', 'userquizzquestions'],
    ];
    let refs = 0;
    let dangling = 0;
    let danglingInArrays = 0;
    let danglingSingle = 0;
    for (const [c, field, target] of checks) {
      const known = ids.get(target)!;
      for (const d of docs(c)) {
        const v = d[field];
        if (v === undefined) continue;
        const items = Array.isArray(v) ? v : [v];
        for (const item of items) {
          const id = item instanceof ObjectId ? item : (item as Document).event;
          refs++;
          if (!known.has(String(id))) {
            dangling++;
            if (Array.isArray(v)) danglingInArrays++;
            else danglingSingle++;
          }
        }
      }
    }
    assert.ok(danglingInArrays > 0, 'dangling ids inside arrays');
    assert.ok(danglingSingle > 0, 'dangling single references');
    assert.ok(dangling / refs < 0.02, `${dangling} of ${refs} references dangle (should be ≈0.5 %)`);
  });

  test('a non-empty target is refused without --drop (exit 1, nothing changed) and replaced with it', async () => {
    const { name, url } = await servers.mongo.newDatabase('etl sample refuse');
    await client.db(name).collection('users').insertOne({ _id: new ObjectId(), email: 'keep@example.org' });
    const refused = await etl(['sample', '--scale', '200', '--mongo-url', url]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /already has documents in: users/);
    assert.match(refused.stderr, /--drop/);
    assert.equal(await client.db(name).collection('users').countDocuments({}), 1);
    assert.deepEqual(await client.db(name).listCollections({ name: 'ingredients' }).toArray(), [], 'nothing written before refusing');

    const replaced = await etl(['sample', '--scale', '200', '--mongo-url', url, '--drop', '--json']);
    assert.equal(replaced.code, 0, replaced.stderr);
    const report = JSON.parse(replaced.stdout) as { total_documents: number; target: { dropped: string[] } };
    assert.equal(report.total_documents, 200);
    assert.deepEqual(report.target.dropped, ['users']);
    assert.equal(await client.db(name).collection('users').countDocuments({ email: 'keep@example.org' }), 0);
    let total = 0;
    for (const c of SAMPLE_COLLECTIONS) total += await client.db(name).collection(c).countDocuments({});
    assert.equal(total, 200);
  });

  test('--db names the database; the URL must not carry credentials into the output', async () => {
    const { url } = await servers.mongo.newDatabase('etl sample db flag');
    const target = 'etl_sample_db_flag_x';
    await client.db(target).dropDatabase();
    const withCreds = url.replace('mongodb://', 'mongodb://someone:s3cretpw@');
    const r = await etl(['sample', '--scale', '100', '--mongo-url', withCreds, '--db', target]);
    // FerretDB without auth may accept or refuse the credentials: either way no password is printed.
    assert.ok(!r.stdout.includes('s3cretpw') && !r.stderr.includes('s3cretpw'), 'password never printed');
    const plain = await etl(['sample', '--scale', '100', '--mongo-url', url, '--db', target, '--drop']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(await client.db(target).collection('users').countDocuments({}) > 0, true);
    await client.db(target).dropDatabase();
  });
});
