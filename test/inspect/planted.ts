// A MongoDB database and a PostgreSQL database (the project's pipeline.yaml) with differences
// planted by hand, so `etl diff` has something exact to find:
//   users           U2 missing, U3 extra, U1 firstname changed (only --deep), ULONG rejected
//                   (firstname of 300 characters) while PostgreSQL holds an older row of it
//   menus           M2 (an event with __t menu) missing
//   user_events     (U1, M1) missing (a plain-id item beside a subdocument item), (U1, M2) extra
//   users_targets   (U1, T2, health) missing, (U1, T2, basic) extra: same pair, another type
//   users_logbook   (U1, 2024-07-15) missing (a summer day: stored 2024-07-14T22:00Z); two documents
//                   for (U1, 2024-03-07) fold into one row; one document without `user` skipped
// repair() turns the PostgreSQL side into exactly what a load would write.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MongoClient, ObjectId } from 'mongodb';
import pg from 'pg';
import { loadPipeline } from '../../model/load-pipeline.ts';
import type { PipelineModel } from '../../model/types.ts';
import { applySchema } from '../../schema/apply.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PIPELINE = path.join(REPO, 'pipeline.yaml');

const oid = (n: number) => `64a0000000000000000000${n.toString(16).padStart(2, '0')}`;
export const ID = {
  U1: oid(1),
  U2: oid(2),
  U3: oid(3),
  ULONG: oid(4),
  E1: oid(16),
  M1: oid(17),
  M2: oid(18),
  T1: oid(32),
  T2: oid(33),
  LB1: oid(48),
  LB2: oid(49),
  LB3: oid(50),
  LB4: oid(51),
} as const;

const d = (iso: string) => new Date(iso);
const o = (hex: string) => new ObjectId(hex);

export async function model(): Promise<PipelineModel> {
  return loadPipeline(PIPELINE);
}

export async function seedMongo(url: string, database: string): Promise<void> {
  const client = new MongoClient(url);
  await client.connect();
  try {
    const db = client.db(database);
    const base = { creation_date: d('2024-01-01T10:00:00Z'), update_date: d('2024-02-01T10:00:00Z'), __v: 0 };
    await db.collection('targets').insertMany([
      { _id: o(ID.T1), ...base, name: 'Sleep' },
      { _id: o(ID.T2), ...base, name: 'Stress' },
    ]);
    await db.collection('events').insertMany([
      { _id: o(ID.E1), ...base, __t: 'webinar', name: 'Webinar', start_date: d('2024-04-01T08:00:00Z'), end_date: d('2024-04-01T09:00:00Z') },
      { _id: o(ID.M1), ...base, __t: 'menu', name: 'Menu A', start_date: d('2024-04-01T00:00:00Z'), end_date: d('2024-04-07T00:00:00Z') },
      { _id: o(ID.M2), ...base, __t: 'menu', name: 'Menu B', start_date: d('2024-05-01T00:00:00Z'), end_date: d('2024-05-07T00:00:00Z') },
    ]);
    await db.collection('users').insertMany([
      {
        _id: o(ID.U1),
        ...base,
        firstname: 'Ann',
        lastname: 'Lee',
        email: 'ann@example.fr',
        phone: '+33612345678',
        birthday: d('1990-05-14T22:00:00Z'),
        role: 'CUSTOMER',
        // Mixed forms in one array: a current subdocument with its own date, and a legacy plain id.
        registered_events: [{ _id: new ObjectId(), event: o(ID.E1), date: d('2024-01-05T08:00:00Z') }, o(ID.M1)],
        specificity_targets: [o(ID.T1)],
        health_targets: [o(ID.T2)],
      },
      { _id: o(ID.U2), ...base, firstname: 'Bob', lastname: 'Ray', email: 'bob@example.fr', role: 'DIET' },
      { _id: o(ID.ULONG), ...base, firstname: 'x'.repeat(300), lastname: 'Long', email: 'long@example.fr', role: 'CUSTOMER' },
    ]);
    await db.collection('coachinglogbooks').insertMany([
      { _id: o(ID.LB1), user: o(ID.U1), day: d('2024-03-06T23:00:00Z'), creation_date: d('2024-03-07T08:00:00Z'), update_date: d('2024-03-07T08:00:00Z') },
      { _id: o(ID.LB2), user: o(ID.U1), day: d('2024-03-06T23:00:00Z'), creation_date: d('2024-03-07T09:00:00Z'), update_date: d('2024-03-08T09:00:00Z') },
      { _id: o(ID.LB3), user: o(ID.U1), day: d('2024-07-14T22:00:00Z'), creation_date: d('2024-07-15T07:00:00Z'), update_date: d('2024-07-15T07:00:00Z') },
      { _id: o(ID.LB4), coaching: new ObjectId(), day: d('2024-03-06T23:00:00Z'), creation_date: d('2024-03-07T08:00:00Z'), update_date: d('2024-03-07T08:00:00Z') },
    ]);
  } finally {
    await client.close();
  }
}

const C = '2024-01-01 10:00:00';
const U = '2024-02-01 10:00:00';

export async function seedPostgres(url: string, m: PipelineModel): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await applySchema(client, m);
    const q = (sql: string, params: unknown[]) => client.query(sql, params);
    for (const [id, name] of [
      [ID.T1, 'Sleep'],
      [ID.T2, 'Stress'],
    ]) {
      await q('INSERT INTO targets (id, created_at, updated_at, name) VALUES ($1, $2, $3, $4)', [id, C, U, name]);
    }
    await q('INSERT INTO events (id, created_at, updated_at, name, type, start_date, end_date) VALUES ($1, $2, $3, $4, $5, $6, $7)', [ID.E1, C, U, 'Webinar', 'webinar', '2024-04-01 08:00:00', '2024-04-01 09:00:00']);
    await q('INSERT INTO events (id, created_at, updated_at, name, type, start_date, end_date) VALUES ($1, $2, $3, $4, $5, $6, $7)', [ID.M1, C, U, 'Menu A', 'menu', '2024-04-01 00:00:00', '2024-04-07 00:00:00']);
    await q('INSERT INTO events (id, created_at, updated_at, name, type, start_date, end_date) VALUES ($1, $2, $3, $4, $5, $6, $7)', [ID.M2, C, U, 'Menu B', 'menu', '2024-05-01 00:00:00', '2024-05-07 00:00:00']);
    await q('INSERT INTO menus (id, created_at, updated_at, name) VALUES ($1, $2, $3, $4)', [ID.M1, C, U, 'Menu A']);
    const user = 'INSERT INTO users (id, created_at, updated_at, firstname, lastname, email, phone, birthdate, role) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)';
    await q(user, [ID.U1, C, U, 'Anne', 'Lee', 'ann@example.fr', '+33612345678', '1990-05-15', 'CUSTOMER']); // firstname changed
    await q(user, [ID.U3, C, U, 'Gone', 'User', 'gone@example.fr', null, null, 'CUSTOMER']); // extra
    await q(user, [ID.ULONG, C, U, 'Old', 'Long', 'long@example.fr', null, null, 'CUSTOMER']); // an older, loadable version
    const link = 'INSERT INTO user_events (user_id, event_id, created_at, updated_at) VALUES ($1, $2, $3, $4)';
    await q(link, [ID.U1, ID.E1, '2024-01-05 08:00:00', '2024-01-05 08:00:00']);
    await q(link, [ID.U1, ID.M2, C, U]); // extra
    const target = 'INSERT INTO users_targets (user_id, target_id, type, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)';
    await q(target, [ID.U1, ID.T1, 'specificity', C, U]);
    await q(target, [ID.U1, ID.T2, 'basic', C, U]); // extra: the pair exists with type health
    await q('INSERT INTO users_logbook (user_id, day, created_at, updated_at) VALUES ($1, $2, $3, $4)', [ID.U1, '2024-03-07', '2024-03-07 09:00:00', '2024-03-08 09:00:00']);
  } finally {
    await client.end();
  }
}

/** Makes PostgreSQL exactly what a load of the MongoDB side would write. */
export async function repair(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const q = (sql: string, params: unknown[] = []) => client.query(sql, params);
    await q('INSERT INTO users (id, created_at, updated_at, firstname, lastname, email, role) VALUES ($1, $2, $3, $4, $5, $6, $7)', [ID.U2, C, U, 'Bob', 'Ray', 'bob@example.fr', 'DIET']);
    await q('UPDATE users SET firstname = $2 WHERE id = $1', [ID.U1, 'Ann']);
    await q('DELETE FROM users WHERE id = $1', [ID.U3]);
    await q('INSERT INTO menus (id, created_at, updated_at, name) VALUES ($1, $2, $3, $4)', [ID.M2, C, U, 'Menu B']);
    await q('DELETE FROM user_events WHERE user_id = $1 AND event_id = $2', [ID.U1, ID.M2]);
    await q('INSERT INTO user_events (user_id, event_id, created_at, updated_at) VALUES ($1, $2, $3, $4)', [ID.U1, ID.M1, C, U]);
    await q('UPDATE users_targets SET type = $3 WHERE user_id = $1 AND target_id = $2', [ID.U1, ID.T2, 'health']);
    await q('INSERT INTO users_logbook (user_id, day, created_at, updated_at) VALUES ($1, $2, $3, $4)', [ID.U1, '2024-07-15', '2024-07-15 07:00:00', '2024-07-15 07:00:00']);
  } finally {
    await client.end();
  }
}
