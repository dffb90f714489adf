// Random edits of a Wappizy database, made as the app (or its users, import scripts and offline
// phones) makes them, for the exact-mirror proof (issue 12 item 7) and the incremental bench.
//
// Seeded (sample/prng.ts, never Math.random): the same seed over the same sample picks the same
// documents and makes the same changes, so a failure replays. Every edit sets update_date to now,
// as the app does, except `late_sync` (a new document carrying old dates: an entry captured offline
// and synced days later) and `no_dates` (an import that wrote or rewrote a document without dates, or
// the app writing update_date as a string).
// Things broken (bad values, dangling references, removed dates) are remembered and fixed later.
import { ObjectId, type Db, type Document } from 'mongodb';
import { hash, Rng } from '../../sample/prng.ts';
import { parisDayNumber, parisMidnight, formatDayNumber } from '../../sample/paris-day.ts';
import {
  ARRAYS,
  COLLECTIONS,
  DELETE_WEIGHTS,
  FIELDS,
  INSERT_WEIGHTS,
  KEEP_AT_LEAST,
  LATE_SYNC_WEIGHTS,
  REFS,
  type ArraySpec,
  type FieldSpec,
  type RefSpec,
  type ValueSource,
} from './edit-specs.ts';

export type EditKind =
  | 'update_field'
  | 'empty_array'
  | 'shuffle_array'
  | 'subdoc_date'
  | 'insert'
  | 'delete'
  | 'break_value'
  | 'fix_value'
  | 'break_ref'
  | 'fix_ref'
  | 'day_correction'
  | 'logbook_user'
  | 'type_change'
  | 'recipe_change'
  | 'late_sync'
  | 'no_dates'
  | 'restore_dates'
  // A document deleted earlier inserted again as it was (old _id, old dates): restored from a backup.
  | 'undelete'
  // A whole collection deleted, and its documents inserted again later (emptyCollection, refill).
  | 'empty_collection'
  | 'refill_collection'
  // Behind the watermark's back (applyBehind): seen by no incremental run, only by etl diff and etl repair.
  | 'quiet_update'
  | 'backdated_update'
  | 'quiet_delete'
  // In PostgreSQL, by hand (HandEditor, harness.ts): the drift etl repair exists for.
  | 'pg_delete'
  | 'pg_update'
  | 'pg_null_ref'
  | 'pg_insert'
  | 'pg_delete_link'
  // Hostile values through a live server (test/hostile/values/editor.ts).
  | 'hostile_value'
  | 'hostile_reference'
  | 'hostile_array'
  | 'hostile_insert'
  | 'hostile_delete'
  | 'hostile_restore';

/** How often each kind is drawn (relative weights). */
export const EDIT_WEIGHTS: readonly (readonly [EditKind, number])[] = [
  ['update_field', 20],
  ['empty_array', 4],
  ['shuffle_array', 8],
  ['subdoc_date', 5],
  ['insert', 10],
  ['delete', 8],
  ['break_value', 6],
  ['fix_value', 6],
  ['break_ref', 5],
  ['fix_ref', 5],
  ['day_correction', 7],
  ['logbook_user', 4],
  ['type_change', 2],
  ['recipe_change', 4],
  ['late_sync', 6],
  ['no_dates', 2],
  ['restore_dates', 2],
];

/**
 * EDIT_WEIGHTS and the restore of a document deleted in an earlier round (`undelete`): for the proofs
 * that end every round with an `etl run --propagate-deletes` at rest, so that a load saw each
 * deletion (randomized, evolution). A restore writes old dates: one whose deletion no load saw (no run
 * propagated it, or it was deleted and restored between two runs' reads) is a write behind the
 * watermark's back, for etl diff --deep and etl repair. The drift proof's rounds end with a repair,
 * which sees a deletion only where rows differ (its seed 5: a document deleted while a hand edit had
 * already removed its row, then restored), so it draws none.
 */
export const RESTORE_WEIGHTS: readonly (readonly [EditKind, number])[] = [...EDIT_WEIGHTS, ['undelete', 3]];

/**
 * Edits no watermark sees: a mapped field changed with the dates kept (an import that kept them) or
 * set into the past, a document deleted with no --propagate-deletes run after it.
 */
export const BEHIND_WEIGHTS: readonly (readonly [EditKind, number])[] = [
  ['quiet_update', 5],
  ['backdated_update', 3],
  ['quiet_delete', 3],
];

/** One edit applied to MongoDB (or, for the pg_* kinds, to PostgreSQL by hand). */
export interface Edit {
  readonly round: number;
  /** Position in the round, from 1. */
  readonly n: number;
  readonly kind: EditKind;
  readonly collection: string;
  /** The edited document's _id (24 hex). */
  readonly id: string;
  readonly detail: string;
  /** Ids (24 hex) of the documents whose rows this edit may change: the document and what it references. */
  readonly touches: readonly string[];
  /** Dedupe keys the edited document had or has, as PostgreSQL prints the key (`<user>,<day>`, `<menu>,<recipe>`). */
  readonly keys: readonly string[];
}

export const formatEdit = (e: Edit): string => `r${e.round}#${String(e.n).padStart(3, '0')} ${e.kind} ${e.collection} ${e.id} ${e.detail}`;

interface Broken {
  readonly kind: 'value' | 'ref' | 'dates';
  readonly collection: string;
  readonly id: ObjectId;
  readonly field: string;
  /** ref: the dangling id now stored. */
  readonly dangling?: ObjectId;
  readonly original: unknown;
}

const DAY_MS = 86_400_000;
const hexOf = (v: unknown): string[] => (v instanceof ObjectId ? [v.toHexString()] : []);

/** The dedupe key a document feeds, as the key's ROW text shows it; none when a part is missing or bad. */
export function dedupeKeys(c: string, doc: Document): string[] {
  if (c === 'coachinglogbooks' && doc.user instanceof ObjectId && doc.day instanceof Date) {
    return [`${doc.user.toHexString()},${formatDayNumber(parisDayNumber(doc.day.getTime()))}`];
  }
  if (c === 'menurecipes' && doc.menu instanceof ObjectId && doc.recipe instanceof ObjectId) return [`${doc.menu.toHexString()},${doc.recipe.toHexString()}`];
  return [];
}

export class EditGenerator implements ValueSource {
  readonly rng: Rng;
  /** Every edit applied, all rounds. */
  readonly applied: Edit[] = [];
  private readonly ids = new Map<string, ObjectId[]>();
  private broken: Broken[] = [];
  /** The documents delete() deleted, as they were and in which round, until undelete() restores one. */
  private readonly deleted: { readonly c: string; readonly doc: Document; readonly round: number }[] = [];
  /** The round each document inserted by an edit was inserted in (`<collection>/<_id>`). */
  private readonly insertedIn = new Map<string, number>();
  /** The documents of the collections emptyCollection() deleted, until refill() inserts them again. */
  private readonly emptied = new Map<string, Document[]>();
  private round = 0;
  private n = 0;
  private emails = 0;

  private constructor(
    private readonly db: Db,
    seed: number,
    /** The weights of applyRound: EDIT_WEIGHTS, or RESTORE_WEIGHTS for a proof whose every round ends propagating deletes. */
    private readonly weights: readonly (readonly [EditKind, number])[],
  ) {
    this.rng = new Rng(hash(seed >>> 0, 0xed17));
  }

  /** Reads the _id of every document of the collections edits touch (sorted, so picks replay). */
  static async open(db: Db, seed: number, weights = EDIT_WEIGHTS): Promise<EditGenerator> {
    const g = new EditGenerator(db, seed, weights);
    for (const c of COLLECTIONS) {
      const docs = await db.collection(c).find({}, { projection: { _id: 1 } }).toArray();
      g.ids.set(c, docs.map((d) => d._id as ObjectId).sort((a, b) => a.toHexString().localeCompare(b.toHexString())));
    }
    return g;
  }

  /** Applies `count` random edits; returns them. */
  async applyRound(count: number): Promise<Edit[]> {
    let attempts = 0;
    return this.applyWhile((edits) => edits.length < count && attempts++ < count * 20, this.weights);
  }

  /** Applies `count` random edits behind the watermark's back (BEHIND_WEIGHTS); returns them. */
  async applyBehind(count: number): Promise<Edit[]> {
    let attempts = 0;
    return this.applyWhile((edits) => edits.length < count && attempts++ < count * 20, BEHIND_WEIGHTS);
  }

  /**
   * A round of random edits, one at a time for as long as `more` (asked before each, with the
   * round's edits so far) says so; `more` may wait first: edits paced while something else runs.
   */
  async applyWhile(more: (edits: readonly Edit[]) => boolean | Promise<boolean>, weights = EDIT_WEIGHTS): Promise<Edit[]> {
    this.round += 1;
    this.n = 0;
    const edits: Edit[] = [];
    while (await more(edits)) {
      const edit = await this.applyOne(this.rng.weighted(weights));
      if (!edit) continue;
      edits.push(edit);
      this.applied.push(edit);
    }
    return edits;
  }

  /**
   * Deletes every document of collection `c` (as an operator purging it, or an app that stopped
   * using it), recorded as one edit of its own round; refill() inserts them again.
   */
  async emptyCollection(c: string): Promise<Edit> {
    this.round += 1;
    this.n = 0;
    const docs = await this.db.collection(c).find({}).sort({ _id: 1 }).toArray();
    await this.db.collection(c).deleteMany({});
    this.emptied.set(c, [...(this.emptied.get(c) ?? []), ...docs]);
    this.ids.set(c, []);
    const ids = docs.map((d) => d._id as ObjectId);
    const edit = this.record('empty_collection', c, ids[0] ?? new ObjectId(), `every document deleted (${docs.length})`, ids, docs);
    this.applied.push(edit);
    return edit;
  }

  /** The collections emptyCollection() emptied and refill() has not filled again. */
  get emptiedCollections(): string[] {
    return [...this.emptied.keys()];
  }

  /**
   * The documents emptyCollection() deleted from `c` inserted again under their own _id, dated now
   * (a restore the app saves again; one that kept the old dates is seen only when a load saw the
   * deletion, which the operator proof's refused loads may not: undelete() is that edit), recorded
   * as one edit of its own round.
   */
  async refill(c: string): Promise<Edit> {
    this.round += 1;
    this.n = 0;
    const docs = this.emptied.get(c) ?? [];
    this.emptied.delete(c);
    const now = new Date();
    const restored: Document[] = docs.map((d) => ({ ...d, update_date: now }));
    if (restored.length > 0) await this.db.collection(c).insertMany(restored);
    const ids = restored.map((d) => d._id as ObjectId);
    this.ids.set(c, [...(this.ids.get(c) ?? []), ...ids].sort((a, b) => a.toHexString().localeCompare(b.toHexString())));
    const edit = this.record('refill_collection', c, ids[0] ?? new ObjectId(), `${restored.length} documents inserted again, update_date now`, ids, restored);
    this.applied.push(edit);
    return edit;
  }

  // ── helpers the field specs use ──────────────────────────────────────────────────────────────

  /** A random live _id of a collection, or null when it has none. */
  someId(c: string): ObjectId | null {
    const list = this.ids.get(c) ?? [];
    return list.length === 0 ? null : list[this.rng.below(list.length)]!;
  }

  /** An instant between `minDays` and `maxDays` days ago. */
  pastDate(minDays: number, maxDays: number): Date {
    return new Date(Date.now() - this.rng.int(minDays * 24, maxDays * 24) * 3_600_000 - this.rng.below(3_600_000));
  }

  private async applyOne(kind: EditKind): Promise<Edit | null> {
    switch (kind) {
      case 'update_field':
        return this.updateField();
      case 'empty_array':
        return this.emptyArray();
      case 'shuffle_array':
        return this.shuffleArray();
      case 'subdoc_date':
        return this.subdocDate();
      case 'insert':
        return this.insert();
      case 'delete':
        return this.delete();
      case 'break_value':
        return this.breakValue();
      case 'fix_value':
        return this.fix('value');
      case 'break_ref':
        return this.breakRef();
      case 'fix_ref':
        return this.fix('ref');
      case 'day_correction':
        return this.dayCorrection();
      case 'logbook_user':
        return this.logbookUser();
      case 'type_change':
        return this.typeChange();
      case 'recipe_change':
        return this.recipeChange();
      case 'late_sync':
        return this.lateSync();
      case 'no_dates':
        return this.noDates();
      case 'restore_dates':
        return this.fix('dates');
      case 'undelete':
        return this.undelete();
      case 'quiet_update':
        return this.updateField('kept');
      case 'backdated_update':
        return this.updateField('past');
      case 'quiet_delete':
        return this.delete('quiet_delete');
      default:
        throw new Error(`${kind} is not a MongoDB edit`);
    }
  }

  /** `states`: the document before and after the edit (for the dedupe keys it leaves and joins). */
  private record(kind: EditKind, collection: string, id: ObjectId, detail: string, touches: readonly unknown[] = [], states: readonly Document[] = []): Edit {
    this.n += 1;
    const ids = new Set([id.toHexString(), ...touches.flatMap(hexOf)]);
    const keys = new Set(states.flatMap((d) => dedupeKeys(collection, d)));
    return { round: this.round, n: this.n, kind, collection, id: id.toHexString(), detail, touches: [...ids], keys: [...keys] };
  }

  private pickCollection(from: Readonly<Record<string, readonly unknown[]>>): string {
    const names = Object.keys(from).filter((c) => (from[c]?.length ?? 0) > 0 && (this.ids.get(c)?.length ?? 0) > 0);
    if (names.length === 0) throw new Error('no collection left to edit');
    return this.rng.pick(names);
  }

  private async load(c: string, id: ObjectId): Promise<Document | null> {
    return this.db.collection(c).findOne({ _id: id });
  }

  /** $set (and $unset for undefined values) with update_date now, as the app saves. */
  private async save(c: string, id: ObjectId, set: Document, unset: readonly string[] = [], touch = true): Promise<void> {
    const $set: Document = {};
    const $unset: Document = Object.fromEntries(unset.map((f) => [f, '']));
    // An undefined value restores an absent field: removed, not stored as null.
    for (const [field, value] of Object.entries(set)) {
      if (value === undefined) $unset[field] = '';
      else $set[field] = value;
    }
    if (touch) $set.update_date = new Date();
    const update: Document = {};
    if (Object.keys($set).length > 0) update.$set = $set;
    if (Object.keys($unset).length > 0) update.$unset = $unset;
    await this.db.collection(c).updateOne({ _id: id }, update);
  }

  private describe = (v: unknown): string => {
    if (v instanceof ObjectId) return v.toHexString();
    if (v instanceof Date) return v.toISOString();
    const s = JSON.stringify(v) ?? 'undefined';
    return s.length > 40 ? `${s.slice(0, 37)}…` : s;
  };

  // ── ordinary edits ───────────────────────────────────────────────────────────────────────────

  /**
   * `dates`: `now` as the app saves; `kept` (an import that kept them) or `past` (update_date, and
   * creation_date when later, set days ago): edits no watermark sees.
   */
  private async updateField(dates: 'now' | 'kept' | 'past' = 'now'): Promise<Edit | null> {
    const c = this.pickCollection({ ...FIELDS, ...REFS });
    const id = this.someId(c)!;
    const doc = await this.load(c, id);
    if (!doc) return null;
    const specs: (FieldSpec | RefSpec)[] = [...(FIELDS[c] ?? []), ...(REFS[c] ?? [])];
    const spec = this.rng.pick(specs);
    const value = 'valid' in spec ? spec.valid(this) : await this.someRef(spec);
    if (value === null) return null;
    const set: Document = { [spec.field]: value, ...(dates === 'past' ? this.pastDates(doc) : {}) };
    await this.save(c, id, set, [], dates === 'now');
    const kind: EditKind = dates === 'now' ? 'update_field' : dates === 'kept' ? 'quiet_update' : 'backdated_update';
    const when = dates === 'now' ? '' : dates === 'kept' ? ' (dates kept)' : ` (update_date ${this.describe(set.update_date)})`;
    return this.record(kind, c, id, `${spec.field}: ${this.describe(doc[spec.field])} → ${this.describe(value)}${when}`, [doc[spec.field], value, ...this.refsOf(c, doc)], [doc, { ...doc, [spec.field]: value }]);
  }

  /** update_date days ago, and creation_date no later than it. */
  private pastDates(doc: Document): Document {
    const updated = this.pastDate(30, 900);
    const created = doc.creation_date instanceof Date && doc.creation_date <= updated ? doc.creation_date : updated;
    return { update_date: updated, creation_date: created };
  }

  private async someRef(spec: RefSpec): Promise<ObjectId | null> {
    if (!spec.refFilter) return this.someId(spec.ref);
    const docs = await this.db.collection(spec.ref).find(spec.refFilter, { projection: { _id: 1 } }).toArray();
    // Documents inserted by other editors may have _ids of other types (test/hostile/values): ObjectIds only.
    const ids = docs.map((d) => d._id).filter((id): id is ObjectId => id instanceof ObjectId).sort((a, b) => a.toHexString().localeCompare(b.toHexString()));
    return ids.length === 0 ? null : this.rng.pick(ids);
  }

  /** The references a document holds (so an edit names the rows it can move: a logbook's user…). */
  private refsOf(c: string, doc: Document): unknown[] {
    return (REFS[c] ?? []).map((r) => doc[r.field]);
  }

  private async pickArray(): Promise<{ c: string; id: ObjectId; doc: Document; spec: ArraySpec } | null> {
    const c = this.pickCollection(ARRAYS);
    const id = this.someId(c)!;
    const spec = this.rng.pick(ARRAYS[c]!);
    const doc = await this.load(c, id);
    return doc ? { c, id, doc, spec } : null;
  }

  private async emptyArray(): Promise<Edit | null> {
    const picked = await this.pickArray();
    if (!picked) return null;
    const { c, id, doc, spec } = picked;
    const before = Array.isArray(doc[spec.field]) ? (doc[spec.field] as unknown[]).length : 0;
    await this.save(c, id, { [spec.field]: [] });
    // The links' rows carry the parent's id: the items need not be named.
    return this.record('empty_array', c, id, `${spec.field}: ${before} items → []`);
  }

  private *itemIds(list: unknown, spec: ArraySpec): Generator<unknown> {
    if (!Array.isArray(list)) return;
    for (const item of list) yield spec.idKey && item && typeof item === 'object' && !(item instanceof ObjectId) ? (item as Document)[spec.idKey] : item;
  }

  /** A new array item: an id, or for subdocument arrays (half the time) a dated subdocument. */
  private newItem(spec: ArraySpec): unknown {
    const ref = this.someId(spec.ref) ?? new ObjectId();
    if (!spec.idKey || this.rng.chance(0.5)) return ref;
    return { _id: new ObjectId(), [spec.idKey]: ref, ...(spec.dateKey ? { [spec.dateKey]: this.pastDate(0, 300) } : {}) };
  }

  /** Reordered, and sometimes an item dropped, one added, one repeated. */
  private async shuffleArray(): Promise<Edit | null> {
    const picked = await this.pickArray();
    if (!picked) return null;
    const { c, id, doc, spec } = picked;
    const list = Array.isArray(doc[spec.field]) ? [...(doc[spec.field] as unknown[])] : [];
    for (let i = list.length - 1; i > 0; i--) {
      const j = this.rng.below(i + 1);
      [list[i], list[j]] = [list[j], list[i]];
    }
    const changes: string[] = ['shuffled'];
    const moved: unknown[] = [];
    if (list.length > 0 && this.rng.chance(0.3)) {
      moved.push(...this.itemIds([list.shift()], spec));
      changes.push(`dropped ${this.describe(moved.at(-1))}`);
    }
    if (this.rng.chance(0.4)) {
      const item = this.newItem(spec);
      list.splice(this.rng.below(list.length + 1), 0, item);
      moved.push(...this.itemIds([item], spec));
      changes.push(`added ${this.describe(moved.at(-1))}`);
    }
    if (list.length > 0 && this.rng.chance(0.1)) {
      list.push(list[this.rng.below(list.length)]);
      changes.push('repeated an item');
    }
    await this.save(c, id, { [spec.field]: list });
    return this.record('shuffle_array', c, id, `${spec.field}: ${changes.join(', ')} (${list.length} items)`, moved);
  }

  /** users.registered_events[k].date changed (or removed, or a plain id turned into a dated subdocument). */
  private async subdocDate(): Promise<Edit | null> {
    const id = this.someId('users');
    const doc = id && (await this.load('users', id));
    if (!id || !doc || !Array.isArray(doc.registered_events) || doc.registered_events.length === 0) return null;
    const list = [...(doc.registered_events as unknown[])];
    const k = this.rng.below(list.length);
    const item = list[k];
    let detail: string;
    if (item instanceof ObjectId) {
      list[k] = { _id: new ObjectId(), event: item, date: this.pastDate(0, 300) };
      detail = `registered_events[${k}]: id → dated subdocument`;
    } else if (this.rng.chance(0.2)) {
      const { date: _date, ...rest } = item as Document;
      list[k] = rest;
      detail = `registered_events[${k}].date removed`;
    } else {
      const date = this.pastDate(0, 300);
      list[k] = { ...(item as Document), date };
      detail = `registered_events[${k}].date → ${date.toISOString()}`;
    }
    await this.save('users', id, { registered_events: list });
    return this.record('subdoc_date', 'users', id, detail, [...this.itemIds([item], { field: 'registered_events', ref: 'events', idKey: 'event' })]);
  }

  /** A copy of a random document under a new _id, dated now (users get a new email). */
  private async insert(): Promise<Edit | null> {
    const c = this.rng.weighted(INSERT_WEIGHTS);
    const source = this.someId(c);
    const doc = source && (await this.load(c, source));
    if (!doc) return null;
    const now = new Date();
    const copy: Document = { ...doc, _id: new ObjectId(), creation_date: now, update_date: now, ...this.uniqueFields(c) };
    if (c === 'coachinglogbooks' && this.rng.chance(0.5)) copy.day = parisMidnight(parisDayNumber(now.getTime()));
    await this.insertDoc(c, copy);
    return this.record('insert', c, copy._id, `copy of ${source.toHexString()}${c === 'coachinglogbooks' ? ` day ${this.describe(copy.day)}` : ''}`, this.refsOf(c, copy), [copy]);
  }

  private uniqueFields(c: string): Document {
    if (c !== 'users') return {};
    this.emails += 1;
    return { email: `mirror.${this.round}.${this.emails}.${this.rng.below(1e9)}@example.org` };
  }

  private async insertDoc(c: string, doc: Document): Promise<void> {
    await this.db.collection(c).insertOne(doc);
    this.ids.get(c)?.push(doc._id as ObjectId);
    this.insertedIn.set(`${c}/${String(doc._id)}`, this.round);
  }

  private async delete(kind: EditKind = 'delete'): Promise<Edit | null> {
    const c = this.rng.weighted(DELETE_WEIGHTS);
    const list = this.ids.get(c) ?? [];
    if (list.length <= KEEP_AT_LEAST) return null;
    const at = this.rng.below(list.length);
    const [id] = list.splice(at, 1);
    const doc = await this.load(c, id!);
    // Nor the menus among the events (the one table with a filter): a small sample may hold one.
    if (c === 'events' && doc?.__t === 'menu' && (await this.menus()) <= KEEP_AT_LEAST) {
      list.splice(at, 0, id!);
      return null;
    }
    await this.db.collection(c).deleteOne({ _id: id });
    // Only a document a run saw can come back unseen by the watermark (etl_gone): one inserted and
    // deleted between two runs, then restored with its old dates, is a write behind its back.
    if (doc && kind === 'delete' && this.insertedIn.get(`${c}/${String(id)}`) !== this.round) this.deleted.push({ c, doc, round: this.round });
    return this.record(kind, c, id!, kind === 'delete' ? 'hard delete' : 'hard delete, no run propagates it', doc ? this.refsOf(c, doc) : [], doc ? [doc] : []);
  }

  /**
   * A document deleted in an earlier round inserted again exactly as it was: a restore from a backup
   * keeps its `_id` and dates.
   */
  private async undelete(): Promise<Edit | null> {
    const earlier = this.deleted.filter((d) => d.round < this.round);
    if (earlier.length === 0) return null;
    const chosen = earlier[this.rng.below(earlier.length)]!;
    this.deleted.splice(this.deleted.indexOf(chosen), 1);
    const { c, doc } = chosen;
    await this.insertDoc(c, doc);
    return this.record('undelete', c, doc._id as ObjectId, `restored from a backup, old _id and dates (updated ${String((doc.update_date as Date | undefined)?.toISOString?.() ?? doc.update_date)})`, this.refsOf(c, doc), [doc]);
  }

  // ── things broken, and fixed later ───────────────────────────────────────────────────────────

  private async breakValue(): Promise<Edit | null> {
    if (this.rng.chance(0.2)) return this.breakArray();
    const c = this.pickCollection(Object.fromEntries(Object.entries(FIELDS).map(([k, v]) => [k, v.filter((f) => f.bad)])));
    const spec = this.rng.pick((FIELDS[c] ?? []).filter((f) => f.bad));
    const id = this.someId(c)!;
    const doc = await this.load(c, id);
    if (!doc || !spec.bad) return null;
    const bad = spec.bad(this);
    await this.save(c, id, { [spec.field]: bad });
    this.broken.push({ kind: 'value', collection: c, id, field: spec.field, original: doc[spec.field] });
    return this.record('break_value', c, id, `${spec.field}: ${this.describe(doc[spec.field])} → bad ${this.describe(bad)}`, this.refsOf(c, doc), [doc]);
  }

  /** An array replaced by a string (an import wrote the ids as text): transform refuses the whole document. */
  private async breakArray(): Promise<Edit | null> {
    const picked = await this.pickArray();
    if (!picked) return null;
    const { c, id, doc, spec } = picked;
    const list = Array.isArray(doc[spec.field]) ? (doc[spec.field] as unknown[]) : [];
    const bad = [...this.itemIds(list, spec)].map((x) => this.describe(x)).join(',');
    await this.save(c, id, { [spec.field]: bad });
    this.broken.push({ kind: 'value', collection: c, id, field: spec.field, original: doc[spec.field] });
    return this.record('break_value', c, id, `${spec.field}: ${list.length} items → the string ${this.describe(bad)}`);
  }

  /** A reference to a document that does not exist (yet): a new ObjectId. */
  private async breakRef(): Promise<Edit | null> {
    const c = this.pickCollection(REFS);
    const spec = this.rng.pick(REFS[c]!);
    const id = this.someId(c)!;
    const doc = await this.load(c, id);
    if (!doc) return null;
    const dangling = new ObjectId();
    await this.save(c, id, { [spec.field]: dangling });
    this.broken.push({ kind: 'ref', collection: c, id, field: spec.field, dangling, original: doc[spec.field] });
    return this.record('break_ref', c, id, `${spec.field}: ${this.describe(doc[spec.field])} → missing ${dangling.toHexString()}`, [doc[spec.field], dangling, ...this.refsOf(c, doc)], [doc, { ...doc, [spec.field]: dangling }]);
  }

  /** A document whose dates are removed (import script) or whose update_date became a string, or a new one inserted without dates. */
  private async noDates(): Promise<Edit | null> {
    const c = this.pickCollection(FIELDS);
    const source = this.someId(c)!;
    const doc = await this.load(c, source);
    if (!doc) return null;
    if (this.rng.chance(0.4)) {
      const { creation_date: _c, update_date: _u, ...rest } = doc;
      const copy: Document = { ...rest, _id: new ObjectId(), ...this.uniqueFields(c) };
      await this.insertDoc(c, copy);
      return this.record('no_dates', c, copy._id, `inserted without dates (copy of ${source.toHexString()})`, this.refsOf(c, copy), [copy]);
    }
    const spec = this.rng.pick(FIELDS[c]!);
    const value = spec.valid(this);
    if (this.rng.chance(0.4)) {
      // The app writing update_date as a string: creation_date stays an old date, so only the read of
      // documents without a dated update_date sees this edit (and every later one).
      await this.save(c, source, { [spec.field]: value, update_date: '2024-03-30' }, [], false);
      this.broken.push({ kind: 'dates', collection: c, id: source, field: 'creation_date', original: doc.creation_date });
      return this.record('no_dates', c, source, `update_date → "2024-03-30" (a string), ${spec.field} → ${this.describe(value)}`, this.refsOf(c, doc), [doc, { ...doc, [spec.field]: value }]);
    }
    await this.save(c, source, { [spec.field]: value }, ['creation_date', 'update_date'], false);
    this.broken.push({ kind: 'dates', collection: c, id: source, field: 'creation_date', original: doc.creation_date });
    return this.record('no_dates', c, source, `dates removed, ${spec.field} → ${this.describe(value)}`, this.refsOf(c, doc), [doc, { ...doc, [spec.field]: value }]);
  }

  /** Fixes something broken earlier: a valid value, the original or a new target for a reference, dates back. */
  private async fix(kind: Broken['kind']): Promise<Edit | null> {
    const candidates = this.broken.filter((b) => b.kind === kind);
    if (candidates.length === 0) return null;
    const b = this.rng.pick(candidates);
    this.broken = this.broken.filter((x) => x !== b);
    const doc = await this.load(b.collection, b.id);
    if (!doc) return this.record(kind === 'value' ? 'fix_value' : kind === 'ref' ? 'fix_ref' : 'restore_dates', b.collection, b.id, 'nothing to fix: the document is gone');
    if (kind === 'dates') {
      const created = b.original instanceof Date ? b.original : new Date();
      await this.save(b.collection, b.id, { creation_date: created });
      return this.record('restore_dates', b.collection, b.id, `creation_date ${created.toISOString()}, update_date now`, this.refsOf(b.collection, doc), [doc]);
    }
    if (kind === 'value') {
      // A broken array gets its items back (or none); a broken scalar its value back, or another valid one.
      const spec = FIELDS[b.collection]?.find((f) => f.field === b.field);
      const keep = b.original !== undefined && b.original !== null && this.rng.chance(0.5);
      const value = spec ? (keep ? b.original : spec.valid(this)) : Array.isArray(b.original) ? b.original : [];
      await this.save(b.collection, b.id, { [b.field]: value });
      return this.record('fix_value', b.collection, b.id, `${b.field} → ${this.describe(value)}`, this.refsOf(b.collection, doc), [{ ...doc, [b.field]: value }]);
    }
    return this.fixRef(b, doc);
  }

  /** The original target back, or the missing document created under the dangling id (it arrives late). */
  private async fixRef(b: Broken, doc: Document): Promise<Edit> {
    const spec = REFS[b.collection]!.find((r) => r.field === b.field)!;
    if (this.rng.chance(0.5) || doc[b.field] === undefined || !(b.dangling instanceof ObjectId)) {
      await this.save(b.collection, b.id, { [b.field]: b.original });
      return this.record('fix_ref', b.collection, b.id, `${b.field} → ${this.describe(b.original)} (restored)`, [b.original, b.dangling, ...this.refsOf(b.collection, doc)], [{ ...doc, [b.field]: b.original }]);
    }
    const templateId = spec.refFilter ? await this.someRef(spec) : this.someId(spec.ref);
    const template = templateId && (await this.load(spec.ref, templateId));
    if (!template) {
      await this.save(b.collection, b.id, { [b.field]: b.original });
      return this.record('fix_ref', b.collection, b.id, `${b.field} → ${this.describe(b.original)} (restored, no template)`, [b.original, b.dangling], [{ ...doc, [b.field]: b.original }]);
    }
    const now = new Date();
    await this.insertDoc(spec.ref, { ...template, _id: b.dangling, creation_date: now, update_date: now, ...this.uniqueFields(spec.ref) });
    return this.record('fix_ref', b.collection, b.id, `${b.field}: the missing ${spec.ref} ${b.dangling.toHexString()} created`, [b.dangling, ...this.refsOf(b.collection, doc)], [doc]);
  }

  // ── dedupe keys, discriminators, the watermark's blind spots ─────────────────────────────────

  /** A logbook's day corrected by one to three days either way. */
  private async dayCorrection(): Promise<Edit | null> {
    const id = this.someId('coachinglogbooks');
    const doc = id && (await this.load('coachinglogbooks', id));
    if (!id || !doc || !(doc.day instanceof Date)) return null;
    const from = parisDayNumber(doc.day.getTime());
    const to = from + (this.rng.chance(0.5) ? -1 : 1) * this.rng.int(1, 3);
    await this.save('coachinglogbooks', id, { day: parisMidnight(to) });
    return this.record('day_correction', 'coachinglogbooks', id, `day ${formatDayNumber(from)} → ${formatDayNumber(to)}`, [doc.user], [doc, { ...doc, day: parisMidnight(to) }]);
  }

  /** A logbook loses its user, or moves to another user. */
  private async logbookUser(): Promise<Edit | null> {
    const id = this.someId('coachinglogbooks');
    const doc = id && (await this.load('coachinglogbooks', id));
    if (!id || !doc) return null;
    if (doc.user !== undefined && this.rng.chance(0.5)) {
      await this.save('coachinglogbooks', id, {}, ['user']);
      return this.record('logbook_user', 'coachinglogbooks', id, `user ${this.describe(doc.user)} removed`, [doc.user], [doc]);
    }
    const user = this.someId('users');
    await this.save('coachinglogbooks', id, { user });
    return this.record('logbook_user', 'coachinglogbooks', id, `user ${this.describe(doc.user)} → ${this.describe(user)}`, [doc.user, user], [doc, { ...doc, user }]);
  }

  /** An event's discriminator changed: a menu becomes something else, or something else a menu. */
  private async typeChange(): Promise<Edit | null> {
    const id = this.someId('events');
    const doc = id && (await this.load('events', id));
    if (!id || !doc) return null;
    const menus = await this.menus();
    const to = doc.__t === 'menu' ? this.rng.pick(['webinar', 'individualChallenge', 'collectiveChallenge']) : 'menu';
    if (doc.__t === 'menu' && menus <= KEEP_AT_LEAST) return null;
    await this.save('events', id, { __t: to });
    return this.record('type_change', 'events', id, `__t ${this.describe(doc.__t)} → ${to}`);
  }

  /** How many events are menus (the rows of menus, which no edit may empty: KEEP_AT_LEAST). */
  private menus(): Promise<number> {
    return this.db.collection('events').countDocuments({ __t: 'menu' });
  }

  /** A menurecipes document gets another recipe (or, less often, another menu). */
  private async recipeChange(): Promise<Edit | null> {
    const id = this.someId('menurecipes');
    const doc = id && (await this.load('menurecipes', id));
    if (!id || !doc) return null;
    const spec = this.rng.chance(0.75) ? REFS.menurecipes![1]! : REFS.menurecipes![0]!;
    const value = await this.someRef(spec);
    if (!value) return null;
    await this.save('menurecipes', id, { [spec.field]: value });
    return this.record('recipe_change', 'menurecipes', id, `${spec.field} ${this.describe(doc[spec.field])} → ${value.toHexString()}`, [doc.menu, doc.recipe, value], [doc, { ...doc, [spec.field]: value }]);
  }

  /** A document written offline days ago and synced now: a new _id, old dates (logbooks: half on an existing day). */
  private async lateSync(): Promise<Edit | null> {
    const c = this.rng.weighted(LATE_SYNC_WEIGHTS);
    const source = this.someId(c);
    const doc = source && (await this.load(c, source));
    if (!doc) return null;
    const created = this.pastDate(1, 200);
    const updated = new Date(Math.min(created.getTime() + this.rng.below(3 * DAY_MS), Date.now() - DAY_MS));
    const copy: Document = { ...doc, _id: new ObjectId(), creation_date: created, update_date: updated };
    if (c === 'coachinglogbooks' && this.rng.chance(0.5)) copy.day = parisMidnight(parisDayNumber(created.getTime()));
    await this.insertDoc(c, copy);
    const day = c === 'coachinglogbooks' ? ` day ${this.describe(copy.day)}` : '';
    return this.record('late_sync', c, copy._id, `copy of ${source.toHexString()}, dated ${created.toISOString()}/${updated.toISOString()}${day}`, this.refsOf(c, copy), [copy]);
  }
}
