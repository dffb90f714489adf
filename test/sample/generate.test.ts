// The generator as a library: deterministic, proportioned, and right about dates and ids.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { serialize, type Document, type ObjectId } from 'bson';
import { generateSample, SAMPLE_COLLECTIONS } from '../../sample/generate.ts';
import { formatDayNumber, parisDayNumber, parisMidnight } from '../../sample/paris-day.ts';
import { Rng } from '../../sample/prng.ts';

function digestOf(scale: number, seed: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of generateSample({ scale, seed }).collections) {
    const h = createHash('sha256');
    for (const doc of c.documents()) h.update(serialize(doc));
    out.set(c.name, h.digest('hex'));
  }
  return out;
}

const paris = new Intl.DateTimeFormat('en-CA', {
  timeZone: 'Europe/Paris',
  hourCycle: 'h23',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});
/** `YYYY-MM-DD HH:MM:SS` wall time in Paris, by Intl (independent of paris-day.ts). */
function parisWall(d: Date): string {
  const p = Object.fromEntries(paris.formatToParts(d).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

describe('sample generator', () => {
  test('the same seed and scale give the same documents; another seed gives others', () => {
    const a = digestOf(3000, 1);
    const b = digestOf(3000, 1);
    const c = digestOf(3000, 2);
    assert.deepEqual([...a], [...b]);
    for (const name of SAMPLE_COLLECTIONS) assert.notEqual(a.get(name), c.get(name), `${name} should differ between seeds`);
  });

  test('a prefix of a collection does not depend on how many documents follow (ids stay stable)', () => {
    const small = generateSample({ scale: 2000, seed: 5 });
    const users = [...small.collections.find((c) => c.name === 'users')!.documents()];
    const again = [...generateSample({ scale: 2000, seed: 5 }).collections.find((c) => c.name === 'users')!.documents()];
    assert.deepEqual(users.map((u) => (u._id as ObjectId).toHexString()), again.map((u) => (u._id as ObjectId).toHexString()));
  });

  test('counts add up to the scale, in production proportions', () => {
    for (const scale of [22, 100, 2000, 20_000, 1_000_000]) {
      const { plan, collections } = generateSample({ scale, seed: 1 });
      assert.equal(Object.values(plan).reduce((a, b) => a + b, 0), scale, `scale ${scale}`);
      for (const c of collections) assert.ok(c.count >= 1, `${c.name} has at least one document at scale ${scale}`);
    }
    const { plan } = generateSample({ scale: 1_000_000, seed: 1 });
    const bySize = [...SAMPLE_COLLECTIONS].sort((x, y) => plan[y] - plan[x]);
    assert.deepEqual(bySize.slice(0, 4), ['coachinglogbooks', 'userquizzquestions', 'days', 'users']);
    for (const small of ['appointmenttypes', 'offers', 'categories', 'targets'] as const) assert.ok(plan[small] <= 100, `${small}: ${plan[small]}`);
    assert.throws(() => generateSample({ scale: 21, seed: 1 }), RangeError);
    assert.throws(() => generateSample({ scale: 1000, seed: -1 }), RangeError);
  });

  test('Paris midnight matches the real time zone rules, 1950 to 2030', () => {
    const first = Math.floor(Date.UTC(1950, 0, 1) / 86_400_000);
    const last = Math.floor(Date.UTC(2030, 11, 31) / 86_400_000);
    for (let day = first; day <= last; day++) {
      const m = parisMidnight(day);
      assert.equal(parisWall(m), `${formatDayNumber(day)} 00:00:00`);
      assert.equal(parisDayNumber(m.getTime()), day);
    }
    assert.equal(parisMidnight(Math.floor(Date.UTC(2024, 2, 7) / 86_400_000)).toISOString(), '2024-03-06T23:00:00.000Z');
    assert.equal(parisMidnight(Math.floor(Date.UTC(2024, 6, 7) / 86_400_000)).toISOString(), '2024-07-06T22:00:00.000Z');
    // No summer time in France in 1960: midnight is 23:00Z the day before, even in July.
    assert.equal(parisMidnight(Math.floor(Date.UTC(1960, 6, 7) / 86_400_000)).toISOString(), '1960-07-06T23:00:00.000Z');
  });

  test('every document: _id timestamp = creation second, update ≥ creation, __v; day-only dates at Paris midnight', () => {
    const { collections } = generateSample({ scale: 5000, seed: 9 });
    const seen = new Set<string>();
    for (const c of collections) {
      for (const doc of c.documents() as Iterable<Document>) {
        const id = doc._id as ObjectId;
        assert.ok(!seen.has(id.toHexString()), `${c.name}: duplicate _id`);
        seen.add(id.toHexString());
        const created = doc.creation_date as Date;
        const updated = doc.update_date as Date;
        assert.ok(created instanceof Date && updated instanceof Date, `${c.name} has both dates`);
        assert.ok(updated.getTime() >= created.getTime(), `${c.name}: update_date ≥ creation_date`);
        assert.equal(id.getTimestamp().getTime(), Math.floor(created.getTime() / 1000) * 1000, `${c.name}: _id timestamp`);
        assert.ok('__v' in doc, `${c.name}: __v`);
        const dayOnly = c.name === 'users' ? doc.birthday : c.name === 'days' ? doc.date : c.name === 'coachinglogbooks' ? doc.day : undefined;
        if (dayOnly !== undefined) assert.match(parisWall(dayOnly as Date), / 00:00:00$/, `${c.name}: ${(dayOnly as Date).toISOString()}`);
      }
    }
  });

  test('the PRNG is the documented mulberry32 (stable across versions)', () => {
    const r = new Rng(1);
    const first = [r.next(), r.next(), r.next()].map((x) => Math.floor(x * 2 ** 32));
    // mulberry32(1), computed by an independent (Python) implementation.
    assert.deepEqual(first, [2693262067, 11749833, 2265367787]);
  });
});
