// The randomized proof of a unique constraint beside the key a table merges on (load/unique-values.ts):
// pipeline.yaml with `users.email` declared unique, a small sample whose users collection has the
// app's unique index on email (and more users registered: a small sample holds a handful), a full
// load, then rounds of random email moves among users made through the MongoDB driver, each
// followed by an incremental `etl run --propagate-deletes` (from the
// live server, or from a dump taken just before it) that must leave PostgreSQL equal to a full run
// of MongoDB as it is then. The source holds each email once at every step; between two runs a value
// moves from one row to another, and the row that held it leaves (its document deleted, or refused)
// or changes too. Every edit dates the document now, except a restore (old _id and dates).
//
// Each round also checks the users table's load figures (manifest.json stages.load.tables.users)
// against what happened to its rows: keys that came, went, and rows that changed.
//
// Replay or extend a seed (the _ids of the users the test registers differ from one replay to the
// next; their order, so the moves, do not):
//   UNIQUE_SEEDS=7 UNIQUE_ROUNDS=6 UNIQUE_MOVES=20 UNIQUE_SCALE=200 UNIQUE_USERS=60 \
//     node --import tsx --test --test-timeout=1800000 test/mirror/unique-randomized.test.ts
// A failure prints the seed, the round, where the run read MongoDB, and every move so far (the
// round's first), with a replay line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ObjectId, type Db, type Document } from 'mongodb';
import { hash, Rng } from '../../sample/prng.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import type { LoadSection } from '../../staging/manifest-load.ts';
import { useServers } from '../harness/index.ts';
import { assertMirrors, integers, Mirror, rowsByKey, uniqueEmailPipeline, type RunReport } from './harness.ts';

const servers = useServers();

const SEEDS = integers('UNIQUE_SEEDS', [1, 2]);
const [ROUNDS] = integers('UNIQUE_ROUNDS', [3]) as [number];
const [MOVES] = integers('UNIQUE_MOVES', [12]) as [number];
const [SCALE] = integers('UNIQUE_SCALE', [60]) as [number];
/** Users registered before the first run, beside the sample's (a small sample holds a handful). */
const [USERS] = integers('UNIQUE_USERS', [30]) as [number];
/** `leave` keeps at least this many users. */
const KEEP_AT_LEAST = 8;
/** settings.watermark_margin_seconds: each run reads its round's edits, not the last five minutes' (see pipelineWithMargin). */
const MARGIN_SECONDS = 1;

type MoveKind =
  // A user deletes their account and registers again with the same email (a new _id).
  | 'reregister'
  // Two users swap their emails, through a temporary one (the source's index holds all along).
  | 'swap'
  // Three users pass their emails round: A takes B's, B takes C's, C takes A's.
  | 'cycle'
  // A user changes to a fresh email, and another takes the old one.
  | 'fresh_taken'
  // A user's document loses a NOT NULL field (transform refuses it) and changes its email; another takes the old one.
  | 'refused_taken'
  // A user deleted, email free.
  | 'leave'
  // A user deleted in an earlier round restored from a backup (old _id and dates); whoever holds its
  // email now changes to a fresh one or is deleted.
  | 'come_back'
  // An unrelated edit: a name or phone changed, or a refused document repaired.
  | 'plain';

const WEIGHTS: readonly (readonly [MoveKind, number])[] = [
  ['reregister', 3],
  ['swap', 3],
  ['cycle', 2],
  ['fresh_taken', 3],
  ['refused_taken', 2],
  ['leave', 2],
  ['come_back', 2],
  ['plain', 3],
];

interface Move {
  readonly round: number;
  readonly n: number;
  readonly kind: MoveKind;
  readonly detail: string;
  /** The users (24 hex) whose documents the move changed. */
  readonly ids: readonly string[];
}

const formatMove = (m: Move): string => `r${m.round}#${String(m.n).padStart(2, '0')} ${m.kind} ${m.detail}`;

/** The NOT NULL fields of users whose absence makes transform refuse the document. */
const REQUIRED = ['firstname', 'lastname', 'role'] as const;

const DAY_MS = 86_400_000;

/**
 * Random email moves among users, seeded (the same seed over the same sample makes the same moves).
 * Keeps the source's emails (each present user's) to pick from and to keep unique.
 */
class EmailMover {
  readonly applied: Move[] = [];
  private readonly rng: Rng;
  /** Present users: _id (hex) → email, in a sorted list for picks that replay. */
  private readonly emails = new Map<string, string>();
  private present: string[] = [];
  /**
   * Users deleted, as they were and in which round, until come_back restores one. Only those a run
   * saw: one registered and deleted between two runs, restored with its old dates, would be a write
   * behind the watermark's back (no etl_gone entry reads it again), which no run can see.
   */
  private readonly deleted: { readonly doc: Document; readonly round: number }[] = [];
  /** Refused documents: the field removed and its value (a plain edit puts it back). */
  private readonly refused = new Map<string, { readonly field: string; readonly value: unknown }>();
  /** The round each user register() made was registered in. */
  private readonly registeredIn = new Map<string, number>();
  private round = 0;
  private fresh = 0;

  private constructor(
    private readonly db: Db,
    private readonly seed: number,
  ) {
    this.rng = new Rng(hash(seed >>> 0, 0xe3a1));
  }

  static async open(db: Db, seed: number): Promise<EmailMover> {
    const mover = new EmailMover(db, seed);
    for (const u of await db.collection('users').find({}, { projection: { email: 1 } }).toArray()) mover.emails.set((u._id as ObjectId).toHexString(), String(u.email));
    mover.present = [...mover.emails.keys()].sort();
    return mover;
  }

  /** Registers `count` users (round 0: before the first run). */
  async populate(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.register(this.freshEmail('user'));
  }

  /** Applies `count` moves as round `round`; returns them. */
  async applyRound(round: number, count: number): Promise<Move[]> {
    this.round = round;
    const moves: Move[] = [];
    for (let attempts = 0; moves.length < count && attempts < count * 20; attempts++) {
      const kind = this.rng.weighted(WEIGHTS);
      const made = await this.applyOne(kind);
      if (!made) continue;
      const move: Move = { round, n: moves.length + 1, kind, ...made };
      moves.push(move);
      this.applied.push(move);
    }
    return moves;
  }

  private applyOne(kind: MoveKind): Promise<Omit<Move, 'round' | 'n' | 'kind'> | null> {
    switch (kind) {
      case 'reregister':
        return this.reregister();
      case 'swap':
        return this.swap();
      case 'cycle':
        return this.cycle();
      case 'fresh_taken':
        return this.freshTaken();
      case 'refused_taken':
        return this.refusedTaken();
      case 'leave':
        return this.leave();
      case 'come_back':
        return this.comeBack();
      case 'plain':
        return this.plain();
    }
  }

  // ── the moves ────────────────────────────────────────────────────────────────────────────────

  private async reregister() {
    const [a] = this.pick(1) ?? [];
    if (!a) return null;
    const email = this.emails.get(a)!;
    await this.remove(a);
    const again = await this.register(email);
    return { detail: `${a} deleted; ${again} registers with ${email}`, ids: [a, again] };
  }

  private async swap() {
    const [a, b] = this.pick(2) ?? [];
    if (!a || !b) return null;
    const [ea, eb] = [this.emails.get(a)!, this.emails.get(b)!];
    await this.setEmail(a, this.freshEmail('swap'));
    await this.setEmail(b, ea);
    await this.setEmail(a, eb);
    return { detail: `${a} ${ea} ⇄ ${b} ${eb}`, ids: [a, b] };
  }

  private async cycle() {
    const [a, b, c] = this.pick(3) ?? [];
    if (!a || !b || !c) return null;
    const [ea, eb, ec] = [this.emails.get(a)!, this.emails.get(b)!, this.emails.get(c)!];
    await this.setEmail(a, this.freshEmail('cycle'));
    await this.setEmail(c, ea);
    await this.setEmail(b, ec);
    await this.setEmail(a, eb);
    return { detail: `${a} takes ${eb}, ${b} takes ${ec}, ${c} takes ${ea}`, ids: [a, b, c] };
  }

  private async freshTaken() {
    const [a, b] = this.pick(2) ?? [];
    if (!a || !b) return null;
    const [ea, eb] = [this.emails.get(a)!, this.emails.get(b)!];
    const fresh = this.freshEmail('fresh');
    await this.setEmail(a, fresh);
    await this.setEmail(b, ea);
    return { detail: `${a} ${ea} → ${fresh}; ${b} ${eb} → ${ea}`, ids: [a, b] };
  }

  private async refusedTaken() {
    const [a, b] = this.pick(2, (id) => !this.refused.has(id)) ?? [];
    if (!a || !b) return null;
    const field = this.rng.pick(REQUIRED);
    const before = await this.db.collection('users').findOne({ _id: new ObjectId(a) });
    if (!before || before[field] === undefined) return null;
    const ea = this.emails.get(a)!;
    const fresh = this.freshEmail('refused');
    await this.db.collection('users').updateOne({ _id: new ObjectId(a) }, { $unset: { [field]: '' }, $set: { email: fresh, update_date: new Date() } });
    this.emails.set(a, fresh);
    this.refused.set(a, { field, value: before[field] });
    await this.setEmail(b, ea);
    return { detail: `${a} loses ${field} (refused), ${ea} → ${fresh}; ${b} takes ${ea}`, ids: [a, b] };
  }

  private async leave() {
    if (this.present.length <= KEEP_AT_LEAST) return null;
    const [a] = this.pick(1) ?? [];
    if (!a) return null;
    const email = this.emails.get(a)!;
    await this.remove(a);
    return { detail: `${a} ${email} deleted`, ids: [a] };
  }

  /** A user deleted in an earlier round (a run propagated the deletion: etl_gone reads it again) comes back as it was. */
  private async comeBack() {
    const earlier = this.deleted.filter((d) => d.round < this.round);
    if (earlier.length === 0) return null;
    const chosen = this.rng.pick(earlier);
    const { doc } = chosen;
    const id = (doc._id as ObjectId).toHexString();
    const email = String(doc.email);
    const holder = this.present.find((p) => this.emails.get(p) === email);
    let holderDid = 'its email free';
    if (holder && this.rng.chance(0.5)) {
      const fresh = this.freshEmail('moved');
      await this.setEmail(holder, fresh);
      holderDid = `${holder} moves off it to ${fresh}`;
    } else if (holder) {
      await this.remove(holder);
      holderDid = `${holder} holding it deleted`;
    }
    this.deleted.splice(this.deleted.indexOf(chosen), 1);
    await this.db.collection('users').insertOne(doc);
    this.add(id, email);
    const dated = (doc.update_date as Date).toISOString();
    return { detail: `${id} ${email} restored (old _id and dates, updated ${dated}, deleted in round ${chosen.round}); ${holderDid}`, ids: holder ? [id, holder] : [id] };
  }

  private async plain() {
    const refused = this.present.filter((id) => this.refused.has(id));
    if (refused.length > 0 && this.rng.chance(0.4)) {
      const a = this.rng.pick(refused);
      const { field, value } = this.refused.get(a)!;
      await this.db.collection('users').updateOne({ _id: new ObjectId(a) }, { $set: { [field]: value, update_date: new Date() } });
      this.refused.delete(a);
      return { detail: `${a} gets its ${field} back (no longer refused)`, ids: [a] };
    }
    const [a] = this.pick(1) ?? [];
    if (!a) return null;
    const change = this.rng.chance(0.5) ? { lastname: `Nom${this.rng.int(1, 999)}` } : { phone: `06${String(this.rng.int(0, 99_999_999)).padStart(8, '0')}` };
    await this.db.collection('users').updateOne({ _id: new ObjectId(a) }, { $set: { ...change, update_date: new Date() } });
    return { detail: `${a} ${JSON.stringify(change)}`, ids: [a] };
  }

  // ── helpers ──────────────────────────────────────────────────────────────────────────────────

  /** `count` distinct present users (`accept`ed), or null when there are not enough. */
  private pick(count: number, accept: (id: string) => boolean = () => true): string[] | null {
    const pool = this.present.filter(accept);
    if (pool.length < count) return null;
    const out: string[] = [];
    while (out.length < count) {
      const id = pool.splice(this.rng.below(pool.length), 1)[0]!;
      out.push(id);
    }
    return out;
  }

  private freshEmail(label: string): string {
    this.fresh += 1;
    return `${label}-${this.seed}-${this.fresh}@example.org`;
  }

  private async setEmail(id: string, email: string): Promise<void> {
    await this.db.collection('users').updateOne({ _id: new ObjectId(id) }, { $set: { email, update_date: new Date() } });
    this.emails.set(id, email);
  }

  /** Deletes a user, remembered (as it was, and when) for come_back. */
  private async remove(id: string): Promise<void> {
    const doc = await this.db.collection('users').findOneAndDelete({ _id: new ObjectId(id) });
    assert.ok(doc, `user ${id} to delete`);
    if (this.registeredIn.get(id) !== this.round) this.deleted.push({ doc, round: this.round });
    this.emails.delete(id);
    this.present.splice(this.present.indexOf(id), 1);
  }

  /** A new account, made now. */
  private async register(email: string): Promise<string> {
    const _id = new ObjectId();
    const now = new Date();
    await this.db.collection('users').insertOne({
      _id,
      firstname: `Prénom${this.rng.int(1, 999)}`,
      lastname: `Nom${this.rng.int(1, 999)}`,
      email,
      role: 'CUSTOMER',
      birthday: new Date(now.getTime() - this.rng.int(7000, 20000) * DAY_MS),
      creation_date: now,
      update_date: now,
    });
    const id = _id.toHexString();
    this.registeredIn.set(id, this.round);
    this.add(id, email);
    return id;
  }

  private add(id: string, email: string): void {
    this.emails.set(id, email);
    const at = this.present.findIndex((p) => p > id);
    this.present.splice(at === -1 ? this.present.length : at, 0, id);
  }
}

/** The users table's load figures, and what they must be: its rows before and after the run, by key. */
interface UsersFigures {
  readonly inserted: number;
  readonly updated: number;
  readonly deleted: number;
}

function figuresBetween(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): UsersFigures {
  let inserted = 0;
  let updated = 0;
  for (const [key, row] of after) {
    if (!before.has(key)) inserted += 1;
    else if (before.get(key) !== row) updated += 1;
  }
  const deleted = [...before.keys()].filter((key) => !after.has(key)).length;
  return { inserted, updated, deleted };
}

async function loadedUsers(m: Mirror, report: RunReport): Promise<UsersFigures> {
  const manifest = JSON.parse(await m.stagedFile(report, 'manifest.json')) as { stages: { load: LoadSection } };
  const users = manifest.stages.load.tables.users;
  assert.ok(users, `run ${report.runId} loaded users`);
  return { inserted: users.inserted, updated: users.updated, deleted: users.deleted };
}

/** What the default seeds did, all told: the proof is not vacuous. */
const done = { moves: new Map<MoveKind, number>(), inserted: 0, updated: 0, deleted: 0, seeds: 0, dumps: 0 };

function replayContext(seed: number, round: number, source: string, moves: readonly Move[]): string {
  const byKind = new Map<string, number>();
  for (const m of moves) byKind.set(m.kind, (byKind.get(m.kind) ?? 0) + 1);
  return [
    `seed ${seed}, round ${round} of ${ROUNDS} (read from ${source}), ${MOVES} moves a round, scale ${SCALE} and ${USERS} users more; replay with`,
    `  UNIQUE_SEEDS=${seed} UNIQUE_ROUNDS=${round} UNIQUE_MOVES=${MOVES} UNIQUE_SCALE=${SCALE} UNIQUE_USERS=${USERS} node --import tsx --test test/mirror/unique-randomized.test.ts`,
    `moves by kind: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `round ${round}'s moves:`,
    ...moves.filter((m) => m.round === round).map((m) => `  ${formatMove(m)}`),
    ...(round > 1 ? ['the earlier rounds:', ...moves.filter((m) => m.round < round).map((m) => `  ${formatMove(m)}`)] : []),
  ].join('\n');
}

const touching = (moves: readonly Move[], row: string): string => {
  const shown = moves.filter((m) => m.ids.some((id) => row.includes(id)));
  return shown.length === 0 ? '(no move names this row)' : shown.map(formatMove).join('\n        ');
};

for (const seed of SEEDS) {
  test(`seed ${seed}: ${ROUNDS} rounds of ${MOVES} random email moves among users (users.email unique), each loaded incrementally, equal to a full run`, async (t) => {
    const m = await Mirror.open(t, servers);
    const pipeline = await uniqueEmailPipeline(m.work, MARGIN_SECONDS);
    const model = await loadPipeline(pipeline);
    await m.sample(SCALE, seed);
    const mover = await EmailMover.open(await m.db(), seed);
    await mover.populate(USERS);
    await m.incremental(['--propagate-deletes'], pipeline);
    for (let round = 1; round <= ROUNDS; round++) {
      const moves = await mover.applyRound(round, MOVES);
      // Every second run reads a dump taken just before it (etl refresh mongo, then etl run --source):
      // a folder of .bson files for odd seeds, a gzipped archive for even ones.
      const source = round % 2 === 0 ? (seed % 2 === 1 ? 'folder' : 'archive') : 'live';
      const context = replayContext(seed, round, source === 'live' ? 'the live server' : `a dump (${source})`, mover.applied);
      try {
        assert.equal(moves.length, MOVES, `round ${round}: every move applied`);
        const before = await rowsByKey(m.incrementalUrl, 'users', ['id']);
        const dump = source === 'live' ? undefined : await m.dump(`round-${round}`, source);
        if (dump) done.dumps += 1;
        const report = await m.incremental(['--propagate-deletes'], pipeline, dump);
        const after = await rowsByKey(m.incrementalUrl, 'users', ['id']);
        const figures = await loadedUsers(m, report);
        assert.deepEqual(figures, figuresBetween(before, after), `round ${round}: the users table's load figures say what happened to its rows`);
        await assertMirrors(model, m.incrementalUrl, await m.reference(pipeline), { examples: 5, annotate: (row) => touching(mover.applied, row) });
        done.inserted += figures.inserted;
        done.updated += figures.updated;
        done.deleted += figures.deleted;
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${context}`, { cause: e });
      }
      for (const move of moves) done.moves.set(move.kind, (done.moves.get(move.kind) ?? 0) + 1);
    }
    done.seeds += 1;
  });
}

test('the default seeds made every kind of move, and the loads inserted, updated and deleted users rows', (t) => {
  const chosen = ['UNIQUE_SEEDS', 'UNIQUE_ROUNDS', 'UNIQUE_MOVES', 'UNIQUE_SCALE', 'UNIQUE_USERS'].filter((v) => process.env[v] !== undefined);
  if (chosen.length > 0) return t.skip(`${chosen.join(', ')} set: not the default seeds`);
  assert.equal(done.seeds, SEEDS.length, 'every seed ran its rounds');
  const missing = WEIGHTS.map(([kind]) => kind).filter((kind) => !done.moves.has(kind));
  assert.deepEqual(missing, [], `moves made: ${JSON.stringify(Object.fromEntries(done.moves))}`);
  const figures = `users rows inserted ${done.inserted}, updated ${done.updated}, deleted ${done.deleted}`;
  assert.ok(done.inserted > 0 && done.updated > 0 && done.deleted > 0, figures);
  assert.ok(done.dumps > 0, 'a round read a dump');
  t.diagnostic(`moves: ${[...done.moves].map(([k, n]) => `${k} ${n}`).join(', ')}; ${figures}; ${done.dumps} round(s) read a dump`);
});
