// Random moves of users' emails made through the MongoDB driver, for the randomized proofs of a
// unique constraint beside the key a table merges on (`users.email`): unique-randomized.test.ts,
// where the source holds each email once (its moves keep the app's unique index), and
// unique-clash-randomized.test.ts, where the source has no such index and its moves make users
// really share an email, then part them again (load/<table>.rejects.ndjson reason duplicate_value).
// Also what both tests read back after a run: the users table's load figures.
import assert from 'node:assert/strict';
import { ObjectId, type Db, type Document } from 'mongodb';
import { hash, Rng } from '../../sample/prng.ts';
import type { LoadSection } from '../../staging/manifest-load.ts';
import { rowsByKey, type Mirror, type RunReport } from './harness.ts';

export type MoveKind =
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
  | 'plain'
  // ── moves that make two or three users share an email (a source without the unique index) ──
  // A user takes the email another user holds (or two users share already: a third holder).
  | 'take'
  // A new account registers with an email a user holds (or two share).
  | 'register_taken'
  // A user deleted in an earlier round restored from a backup while another user holds its email now
  // (the holder keeps it).
  | 'restore_taken'
  // A holder of a shared email edits something else (its row staged again, the email still shared).
  | 'touch_holder'
  // ── moves that part the holders of a shared email ──
  // A holder changes to a fresh email.
  | 'part_fresh'
  // A holder deleted (the runs propagate deletions).
  | 'part_leave'
  // A holder's document loses a NOT NULL field (transform refuses it; its email unchanged).
  | 'part_refused'
  // ── with users.company_id on_missing: reject (COMPANY_MOVES): a holder's row refused for a missing
  // reference is no holder, and holds the value again when the reference is back ──
  // A user (often a holder of a shared email) joins a company.
  | 'join_company'
  // A company a user holding a shared email (else any user) belongs to is deleted.
  | 'company_gone'
  // A deleted company is made again (its old _id, dated now).
  | 'company_back';

export type Weights = readonly (readonly [MoveKind, number])[];

/** The moves of a source that holds each email once (the app's unique index stays). */
export const UNIQUE_MOVES: Weights = [
  ['reregister', 3],
  ['swap', 3],
  ['cycle', 2],
  ['fresh_taken', 3],
  ['refused_taken', 2],
  ['leave', 2],
  ['come_back', 2],
  ['plain', 3],
];

/** The moves of a source without the unique index: those above, and moves making and parting clashes. */
export const CLASH_MOVES: Weights = [
  ['reregister', 1],
  ['swap', 1],
  ['cycle', 1],
  ['fresh_taken', 1],
  ['refused_taken', 1],
  ['leave', 1],
  ['come_back', 1],
  ['plain', 2],
  ['take', 5],
  ['register_taken', 2],
  ['restore_taken', 3],
  ['touch_holder', 2],
  ['part_fresh', 1],
  ['part_leave', 1],
  ['part_refused', 1],
];

/** CLASH_MOVES, and companies of holders coming and going (with users.company_id on_missing: reject). */
export const COMPANY_MOVES: Weights = [...CLASH_MOVES, ['join_company', 3], ['company_gone', 3], ['company_back', 2]];

export interface Move {
  readonly round: number;
  readonly n: number;
  readonly kind: MoveKind;
  readonly detail: string;
  /** The users (24 hex) whose documents the move changed, or whose email it shared. */
  readonly ids: readonly string[];
}

export const formatMove = (m: Move): string => `r${m.round}#${String(m.n).padStart(2, '0')} ${m.kind} ${m.detail}`;

/** The NOT NULL fields of users whose absence makes transform refuse the document. */
const REQUIRED = ['firstname', 'lastname', 'role'] as const;

const DAY_MS = 86_400_000;
/** `leave` keeps at least this many users. */
const KEEP_AT_LEAST = 8;
/** Of the moves that share an email, how often they pick one shared already (a third holder). */
const THIRD_HOLDER = 0.35;

/**
 * Random email moves among users, seeded (the same seed over the same sample makes the same moves).
 * Keeps the source's emails (each present user's) to pick from; with UNIQUE_MOVES, to keep them unique.
 */
export class EmailMover {
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
  /** Present companies (_id hex, sorted), and the deleted ones as they were. */
  private companies: string[] = [];
  private readonly deletedCompanies: Document[] = [];
  /** The round each user register() made was registered in. */
  private readonly registeredIn = new Map<string, number>();
  private round = 0;
  private fresh = 0;

  private constructor(
    private readonly db: Db,
    private readonly seed: number,
    private readonly weights: Weights,
  ) {
    this.rng = new Rng(hash(seed >>> 0, 0xe3a1));
  }

  static async open(db: Db, seed: number, weights: Weights = UNIQUE_MOVES): Promise<EmailMover> {
    const mover = new EmailMover(db, seed, weights);
    for (const u of await db.collection('users').find({}, { projection: { email: 1 } }).toArray()) mover.emails.set((u._id as ObjectId).toHexString(), String(u.email));
    mover.present = [...mover.emails.keys()].sort();
    mover.companies = (await db.collection('companies').find({}, { projection: { _id: 1 } }).toArray()).map((c) => (c._id as ObjectId).toHexString()).sort();
    return mover;
  }

  /** Registers `count` users (round 0: before the first run). */
  async populate(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.register(this.freshEmail('user'));
  }

  /** Makes `count` companies (round 0: before the first run; a small sample holds one). */
  async populateCompanies(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const _id = new ObjectId();
      const now = new Date();
      await this.db.collection('companies').insertOne({ _id, name: `Société ${this.rng.int(1, 999)}`, creation_date: now, update_date: now });
      const id = _id.toHexString();
      const at = this.companies.findIndex((c) => c > id);
      this.companies.splice(at === -1 ? this.companies.length : at, 0, id);
    }
  }

  /** Applies `count` moves as round `round`; returns them. */
  async applyRound(round: number, count: number): Promise<Move[]> {
    this.round = round;
    const moves: Move[] = [];
    for (let attempts = 0; moves.length < count && attempts < count * 20; attempts++) {
      const kind = this.rng.weighted(this.weights);
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
      case 'take':
        return this.take();
      case 'register_taken':
        return this.registerTaken();
      case 'restore_taken':
        return this.restoreTaken();
      case 'touch_holder':
        return this.touchHolder();
      case 'part_fresh':
        return this.partFresh();
      case 'part_leave':
        return this.partLeave();
      case 'part_refused':
        return this.partRefused();
      case 'join_company':
        return this.joinCompany();
      case 'company_gone':
        return this.companyGone();
      case 'company_back':
        return this.companyBack();
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
    await this.restore(chosen);
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
      return { detail: `${a} gets its ${field} back (no longer refused)`, ids: [a, ...this.othersHolding(a)] };
    }
    const [a] = this.pick(1) ?? [];
    if (!a) return null;
    const change = this.otherChange();
    await this.db.collection('users').updateOne({ _id: new ObjectId(a) }, { $set: { ...change, update_date: new Date() } });
    return { detail: `${a} ${JSON.stringify(change)}`, ids: [a] };
  }

  private async take() {
    const email = this.emailToShare();
    if (email === null) return null;
    const holders = this.holdersOf(email);
    const [a] = this.pick(1, (id) => !holders.includes(id)) ?? [];
    if (!a) return null;
    const before = this.emails.get(a)!;
    await this.setEmail(a, email);
    return { detail: `${a} ${before} → ${email}, held by ${holders.join(', ')}`, ids: [a, ...holders] };
  }

  private async registerTaken() {
    const email = this.emailToShare();
    if (email === null) return null;
    const holders = this.holdersOf(email);
    const id = await this.register(email);
    return { detail: `${id} registers with ${email}, held by ${holders.join(', ')}`, ids: [id, ...holders] };
  }

  private async restoreTaken() {
    const earlier = this.deleted.filter((d) => d.round < this.round && this.holdersOf(String(d.doc.email)).length > 0);
    if (earlier.length === 0) return null;
    const chosen = this.rng.pick(earlier);
    const id = (chosen.doc._id as ObjectId).toHexString();
    const email = String(chosen.doc.email);
    const holders = this.holdersOf(email);
    await this.restore(chosen);
    const dated = (chosen.doc.update_date as Date).toISOString();
    return { detail: `${id} ${email} restored (old _id and dates, updated ${dated}, deleted in round ${chosen.round}), held by ${holders.join(', ')} who keep${holders.length === 1 ? 's' : ''} it`, ids: [id, ...holders] };
  }

  private async touchHolder() {
    const holder = this.sharingHolder();
    if (holder === null) return null;
    const change = this.otherChange();
    await this.db.collection('users').updateOne({ _id: new ObjectId(holder) }, { $set: { ...change, update_date: new Date() } });
    return { detail: `${holder} ${JSON.stringify(change)}, sharing ${this.emails.get(holder)} with ${this.othersHolding(holder).join(', ')}`, ids: [holder, ...this.othersHolding(holder)] };
  }

  private async partFresh() {
    const holder = this.sharingHolder();
    if (holder === null) return null;
    const [email, others] = [this.emails.get(holder)!, this.othersHolding(holder)];
    const fresh = this.freshEmail('parted');
    await this.setEmail(holder, fresh);
    return { detail: `${holder} ${email} → ${fresh}, leaving it to ${others.join(', ')}`, ids: [holder, ...others] };
  }

  private async partLeave() {
    const holder = this.sharingHolder();
    if (holder === null || this.present.length <= KEEP_AT_LEAST) return null;
    const [email, others] = [this.emails.get(holder)!, this.othersHolding(holder)];
    await this.remove(holder);
    return { detail: `${holder} ${email} deleted, leaving it to ${others.join(', ')}`, ids: [holder, ...others] };
  }

  private async partRefused() {
    const holder = this.sharingHolder();
    if (holder === null) return null;
    const field = this.rng.pick(REQUIRED);
    const before = await this.db.collection('users').findOne({ _id: new ObjectId(holder) });
    if (!before || before[field] === undefined) return null;
    const [email, others] = [this.emails.get(holder)!, this.othersHolding(holder)];
    await this.db.collection('users').updateOne({ _id: new ObjectId(holder) }, { $unset: { [field]: '' }, $set: { update_date: new Date() } });
    this.refused.set(holder, { field, value: before[field] });
    return { detail: `${holder} loses ${field} (refused), keeping ${email}, shared with ${others.join(', ')}`, ids: [holder, ...others] };
  }

  private async joinCompany() {
    if (this.companies.length === 0) return null;
    const holder = this.rng.chance(0.8) ? this.sharingHolder() : null;
    const [a] = holder ? [holder] : (this.pick(1, (id) => !this.refused.has(id)) ?? []);
    if (!a) return null;
    const company = this.rng.pick(this.companies);
    await this.db.collection('users').updateOne({ _id: new ObjectId(a) }, { $set: { company: new ObjectId(company), update_date: new Date() } });
    const others = this.othersHolding(a);
    return { detail: `${a} ${this.emails.get(a)} joins company ${company}${others.length > 0 ? `, sharing the email with ${others.join(', ')}` : ''}`, ids: [a, ...others, company] };
  }

  private async companyGone() {
    // The last company stays: deleting every row of a table is refused (delete_all_refused).
    if (this.companies.length <= 1) return null;
    const holders = new Set(this.sharedEmails().flatMap((e) => this.holdersOf(e)));
    const members = await this.db.collection('users').find({ company: { $exists: true } }, { projection: { company: 1 } }).toArray();
    const ofHolders = members.filter((u) => holders.has((u._id as ObjectId).toHexString()));
    const chosen = (ofHolders.length > 0 && this.rng.chance(0.85) ? ofHolders : members)
      .map((u) => (u.company instanceof ObjectId ? u.company.toHexString() : null))
      .filter((c): c is string => c !== null && this.companies.includes(c))
      .sort();
    if (chosen.length === 0) return null;
    const company = this.rng.pick(chosen);
    const doc = await this.db.collection('companies').findOneAndDelete({ _id: new ObjectId(company) });
    assert.ok(doc, `company ${company} to delete`);
    this.deletedCompanies.push(doc);
    this.companies.splice(this.companies.indexOf(company), 1);
    const users = members.filter((u) => u.company instanceof ObjectId && u.company.toHexString() === company).map((u) => (u._id as ObjectId).toHexString());
    return { detail: `company ${company} deleted, of users ${users.join(', ')}`, ids: [company, ...users] };
  }

  private async companyBack() {
    if (this.deletedCompanies.length === 0) return null;
    const doc = this.deletedCompanies.splice(this.rng.below(this.deletedCompanies.length), 1)[0]!;
    const company = (doc._id as ObjectId).toHexString();
    await this.db.collection('companies').insertOne({ ...doc, update_date: new Date() });
    this.companies.splice(this.companies.findIndex((c) => c > company) === -1 ? this.companies.length : this.companies.findIndex((c) => c > company), 0, company);
    const users = (await this.db.collection('users').find({ company: doc._id }, { projection: { _id: 1 } }).toArray()).map((u) => (u._id as ObjectId).toHexString());
    return { detail: `company ${company} made again (dated now), of users ${users.join(', ')}`, ids: [company, ...users] };
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

  /** The present users whose document holds `email`, refused ones too. */
  private holdersOf(email: string): string[] {
    return this.present.filter((p) => this.emails.get(p) === email);
  }

  /** The other present users holding `id`'s email. */
  private othersHolding(id: string): string[] {
    return this.holdersOf(this.emails.get(id)!).filter((p) => p !== id);
  }

  /** Emails two or more users not refused hold (rows a full run refuses as duplicate_value), sorted. */
  private sharedEmails(): string[] {
    const count = new Map<string, number>();
    for (const id of this.present) if (!this.refused.has(id)) count.set(this.emails.get(id)!, (count.get(this.emails.get(id)!) ?? 0) + 1);
    return [...count].filter(([, n]) => n > 1).map(([email]) => email).sort();
  }

  /** A user not refused holding a shared email, or null when no email is shared. */
  private sharingHolder(): string | null {
    const shared = this.sharedEmails();
    if (shared.length === 0) return null;
    const holders = this.holdersOf(this.rng.pick(shared)).filter((id) => !this.refused.has(id));
    return this.rng.pick(holders);
  }

  /** An email some user holds, to give another: sometimes one shared already. */
  private emailToShare(): string | null {
    const shared = this.sharedEmails();
    if (shared.length > 0 && this.rng.chance(THIRD_HOLDER)) return this.rng.pick(shared);
    const [b] = this.pick(1, (id) => !this.refused.has(id)) ?? [];
    return b ? this.emails.get(b)! : null;
  }

  /** A change of a field other than the email. */
  private otherChange(): Record<string, string> {
    return this.rng.chance(0.5) ? { lastname: `Nom${this.rng.int(1, 999)}` } : { phone: `06${String(this.rng.int(0, 99_999_999)).padStart(8, '0')}` };
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

  /** Puts a deleted user back as it was (old _id and dates). */
  private async restore(chosen: { readonly doc: Document; readonly round: number }): Promise<void> {
    this.deleted.splice(this.deleted.indexOf(chosen), 1);
    await this.db.collection('users').insertOne(chosen.doc);
    this.add((chosen.doc._id as ObjectId).toHexString(), String(chosen.doc.email));
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

/**
 * Where a round's run reads MongoDB: every second run reads a dump taken just before it (etl refresh
 * mongo, then etl run --source): a folder of .bson files for odd seeds, a gzipped archive for even ones.
 */
export type RoundSource = 'live' | 'folder' | 'archive';

export const roundSource = (seed: number, round: number): RoundSource => (round % 2 === 0 ? (seed % 2 === 1 ? 'folder' : 'archive') : 'live');

export const describeSource = (source: RoundSource): string => (source === 'live' ? 'the live server' : `a dump (${source})`);

/**
 * A round's incremental `etl run --propagate-deletes` (exit 0: Mirror.incremental asserts it) from
 * `source`. Returns the run's report, the users rows before and after it, its users figures (see
 * figuresBetween for what they must be) and the rows it counted rejected.
 */
export async function loadRound(m: Mirror, pipeline: string, round: number, source: RoundSource) {
  const before = await rowsByKey(m.incrementalUrl, 'users', ['id']);
  const dump = source === 'live' ? undefined : await m.dump(`round-${round}`, source);
  const report = await m.incremental(['--propagate-deletes'], pipeline, dump);
  const after = await rowsByKey(m.incrementalUrl, 'users', ['id']);
  const { rejected, ...figures } = await loadedUsers(m, report);
  return { report, before, after, figures, rejected };
}

/** The users table's load figures. */
export interface UsersFigures {
  readonly inserted: number;
  readonly updated: number;
  readonly deleted: number;
  /** New rows the run did not stage: etl_pending's, landed (pending.landed). */
  readonly landed: number;
}

/**
 * What the users figures must be, from its rows before and after the run, by key: inserted = new
 * keys the run staged, landed = new keys it did not, updated = rows that changed, deleted = keys
 * gone. `staged`: the keys (as rowsByKey writes them) of the run's transform/users.csv; without it,
 * every new key counts as staged (a table no row of which waits in etl_pending).
 */
export function figuresBetween(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>, staged?: ReadonlySet<string>): UsersFigures {
  let inserted = 0;
  let landed = 0;
  let updated = 0;
  for (const [key, row] of after) {
    if (!before.has(key) && (!staged || staged.has(key))) inserted += 1;
    else if (!before.has(key)) landed += 1;
    else if (before.get(key) !== row) updated += 1;
  }
  const deleted = [...before.keys()].filter((key) => !after.has(key)).length;
  return { inserted, updated, deleted, landed };
}

async function loadedUsers(m: Mirror, report: RunReport): Promise<UsersFigures & { readonly rejected: number }> {
  const manifest = JSON.parse(await m.stagedFile(report, 'manifest.json')) as { stages: { load: LoadSection } };
  const users = manifest.stages.load.tables.users;
  assert.ok(users, `run ${report.runId} loaded users`);
  return { inserted: users.inserted, updated: users.updated, deleted: users.deleted, landed: users.pending?.landed ?? 0, rejected: users.rejected };
}

/** The moves that named the users a row (its key and values as text) names. */
export const touching = (moves: readonly Move[], row: string): string => {
  const shown = moves.filter((m) => m.ids.some((id) => row.includes(id)));
  return shown.length === 0 ? '(no move names this row)' : shown.map(formatMove).join('\n        ');
};

/** Failure context: the seed, round and source, how to replay (`replay`: the command's variables and file), and every move so far. */
export function replayContext(where: string, replay: string, round: number, moves: readonly Move[]): string {
  const byKind = new Map<string, number>();
  for (const m of moves) byKind.set(m.kind, (byKind.get(m.kind) ?? 0) + 1);
  return [
    `${where}; replay with`,
    `  ${replay}`,
    `moves by kind: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `round ${round}'s moves:`,
    ...moves.filter((m) => m.round === round).map((m) => `  ${formatMove(m)}`),
    ...(round > 1 ? ['the earlier rounds:', ...moves.filter((m) => m.round < round).map((m) => `  ${formatMove(m)}`)] : []),
  ].join('\n');
}
