// Hostile edits through a live MongoDB (values-randomized.test.ts): a mapped field, a reference or
// a link table's array set to a value of the hostile grammar (grammar.ts), documents inserted under
// `_id`s that are not ObjectIds (some of them twins whose text is another document's), such documents
// deleted, and broken fields set back. Seeded: the same seed over the same sample makes the same
// edits. Whatever the server refuses to store is tallied by the value's label, never silently lost.
import { ObjectId, type Db, type Document } from 'mongodb';
import { EJSON } from 'bson';
import { hash, Rng } from '../../../sample/prng.ts';
import type { ColumnModel, PipelineModel } from '../../../model/types.ts';
import { dedupeKeys, type Edit, type EditKind } from '../../mirror/edits.ts';
import { arrayValue, idValue, MISSING, referenceValue, valueFor, type Draw, type Labelled } from './grammar.ts';

type HostileKind = Extract<EditKind, `hostile_${string}`>;

const WEIGHTS: readonly (readonly [HostileKind, number])[] = [
  ['hostile_value', 40],
  ['hostile_reference', 12],
  ['hostile_array', 12],
  ['hostile_insert', 14],
  ['hostile_delete', 6],
  ['hostile_restore', 16],
];

/** A mapped field of a collection: the column it feeds, and the collection a reference points into. */
interface FieldTarget {
  readonly path: string;
  readonly column: ColumnModel;
  readonly refCollection: string | null;
}

interface ArrayTarget {
  readonly field: string;
  readonly refCollection: string;
  readonly idKey: string | null;
  readonly dateKey: string | null;
}

interface Broken {
  readonly collection: string;
  readonly id: unknown;
  readonly path: string;
  readonly original: unknown;
}

/** Documents no delete takes below this many per collection (load refuses an empty live set). */
const KEEP_AT_LEAST = 3;
/** Reads keep every BSON number type as it is stored (Int32, Long and Double told apart). */
export const EXACT = { promoteValues: false, promoteLongs: false } as const;

/** The text an `_id` has in a failure message and in editsTouching (24 hex for an ObjectId). */
export const idText = (id: unknown): string => (id instanceof ObjectId ? id.toHexString() : EJSON.stringify(id as Document, { relaxed: false }));

export class HostileEditor implements Draw {
  readonly rng: Rng;
  readonly applied: Edit[] = [];
  /** Values the server refused to store, by label (FerretDB's limits), with its message. */
  readonly refused = new Map<string, { count: number; message: string }>();
  /** Values stored, by label: the grammar the proof exercised. */
  readonly stored = new Map<string, number>();
  private readonly ids = new Map<string, unknown[]>();
  /** Collections a table keys by `_id` without a filter: a twin pair there shares a key the checks meet. */
  private readonly twinHomes: readonly string[];
  private broken: Broken[] = [];
  private round = 0;
  private n = 0;
  private emails = 0;

  private constructor(
    private readonly db: Db,
    private readonly fields: ReadonlyMap<string, readonly FieldTarget[]>,
    private readonly arrays: ReadonlyMap<string, readonly ArrayTarget[]>,
    model: PipelineModel,
    seed: number,
  ) {
    this.rng = new Rng(hash(seed >>> 0, 0x4057));
    const keyedByIdUnfiltered = model.loadOrder.map((t) => model.tables.get(t)!).filter((t) => t.strategy === 'upsert' && t.documentKey !== null && t.filter === null);
    this.twinHomes = [...new Set(keyedByIdUnfiltered.map((t) => t.collection))].filter((c) => fields.has(c));
  }

  static async open(db: Db, model: PipelineModel, seed: number): Promise<HostileEditor> {
    const { fields, arrays } = targetsOf(model);
    const editor = new HostileEditor(db, fields, arrays, model, seed);
    for (const c of model.collections.map((x) => x.name)) {
      const docs = await db.collection(c).find({}, { projection: { _id: 1 }, ...EXACT }).toArray();
      editor.ids.set(c, docs.map((d) => d._id as unknown).sort((a, b) => idText(a).localeCompare(idText(b))));
    }
    return editor;
  }

  /**
   * Applies `count` hostile edits (fewer if the server refuses values), the last a twin pair both
   * stored; returns them. The pair is drawn last so every round's runs meet a key two documents share
   * whatever the draw: seed 18's only pair lost a half to a delete before the run, and the checks of
   * identities.ts ran on no shared key at all.
   */
  async applyRound(count: number): Promise<Edit[]> {
    this.round += 1;
    this.n = 0;
    const edits: Edit[] = [];
    const keep = (edit: Edit | null): void => {
      if (!edit) return;
      edits.push(edit);
      this.applied.push(edit);
    };
    for (let attempts = 0; edits.length < count - 1 && attempts < count * 10; attempts++) keep(await this.applyOne(this.rng.weighted(WEIGHTS)));
    if (count > 0) for (const edit of await this.storedTwins()) keep(edit);
    return edits;
  }

  // ── Draw ─────────────────────────────────────────────────────────────────────────────────────

  someId(c: string): unknown {
    const list = this.ids.get(c) ?? [];
    return list.length === 0 ? null : list[this.rng.below(list.length)];
  }

  someObjectId(c: string): ObjectId | null {
    const list = (this.ids.get(c) ?? []).filter((id): id is ObjectId => id instanceof ObjectId);
    return list.length === 0 ? null : this.rng.pick(list);
  }

  // ── edits ────────────────────────────────────────────────────────────────────────────────────

  private applyOne(kind: HostileKind): Promise<Edit | null> {
    switch (kind) {
      case 'hostile_value':
        return this.setField(false);
      case 'hostile_reference':
        return this.setField(true);
      case 'hostile_array':
        return this.setArray();
      case 'hostile_insert':
        return this.insert();
      case 'hostile_delete':
        return this.delete();
      case 'hostile_restore':
        return this.restore();
    }
  }

  private async load(c: string, id: unknown): Promise<Document | null> {
    return this.db.collection(c).findOne({ _id: id as never }, EXACT);
  }

  /** A field set to a hostile value (a reference field when `reference`), update_date now as the app saves. */
  private async setField(reference: boolean): Promise<Edit | null> {
    const candidates = [...this.fields].filter(([c, fs]) => (this.ids.get(c)?.length ?? 0) > 0 && fs.some((f) => (f.refCollection !== null) === reference));
    if (candidates.length === 0) return null;
    const [c, targets] = this.rng.pick(candidates);
    const target = this.rng.pick(targets.filter((f) => (f.refCollection !== null) === reference));
    const id = this.someId(c);
    const doc = await this.load(c, id);
    if (!doc) return this.forget(c, id);
    const value = reference ? referenceValue(target.refCollection!, target.column.sqlType, this) : valueFor(target.column.sqlType, this);
    if (target.path === '__t' && (await this.amongLastMenus(c, doc))) return null;
    const original = valueAt(doc, target.path);
    if (!(await this.write(c, id, target.path, value))) return null;
    this.broken.push({ collection: c, id, path: target.path, original });
    return this.record(reference ? 'hostile_reference' : 'hostile_value', c, id, `${target.path} (${target.column.sqlTypeText}) → ${value.label}`, [doc]);
  }

  /** A link table's array set to hostile items (or to something that is not an array). */
  private async setArray(): Promise<Edit | null> {
    const candidates = [...this.arrays].filter(([c]) => (this.ids.get(c)?.length ?? 0) > 0);
    if (candidates.length === 0) return null;
    const [c, targets] = this.rng.pick(candidates);
    const target = this.rng.pick(targets);
    const id = this.someId(c);
    const doc = await this.load(c, id);
    if (!doc) return this.forget(c, id);
    const value = arrayValue(target.refCollection, target.idKey, target.dateKey, this);
    if (!(await this.write(c, id, target.field, value))) return null;
    this.broken.push({ collection: c, id, path: target.field, original: doc[target.field] });
    return this.record('hostile_array', c, id, `${target.field} → ${value.label}`, [doc]);
  }

  /**
   * $set (or $unset for MISSING) of one path, and update_date now (creation_date now when the path
   * is update_date: the document stays in the next run's window); false when the server refused it.
   */
  private async write(c: string, id: unknown, path: string, value: Labelled): Promise<boolean> {
    const now = new Date();
    const dates = path === 'update_date' ? { creation_date: now } : { update_date: now };
    const update = value.value === MISSING ? { $unset: { [path]: '' }, $set: dates } : { $set: { [path]: value.value, ...dates } };
    try {
      await this.db.collection(c).updateOne({ _id: id as never }, update);
    } catch (e) {
      this.refuse(value.label, e);
      return false;
    }
    this.stored.set(value.label, (this.stored.get(value.label) ?? 0) + 1);
    return true;
  }

  private refuse(label: string, e: unknown): void {
    const r = this.refused.get(label) ?? { count: 0, message: e instanceof Error ? e.message.slice(0, 160) : String(e) };
    r.count += 1;
    this.refused.set(label, r);
  }

  /**
   * A copy of a live document under a hostile `_id`, dated now; a third of the time two copies whose
   * `_id`s a text column cannot tell apart (`5` and `"5"`, a Date and its ISO text, a live ObjectId
   * and its hex, `true` and `"true"`).
   */
  private async insert(): Promise<Edit | null> {
    const c = this.rng.pick([...this.fields.keys()].filter((x) => (this.ids.get(x)?.length ?? 0) > 0));
    return (await this.copies(c, () => (this.rng.chance(0.35) ? this.twins(c) : [idValue(this, this.someObjectId(c))]))).edit;
  }

  /**
   * A twin pair of `_id`s both of which the server stored, in a collection whose documents a table
   * keys by `_id` unfiltered; drawn again when a half is refused (its `_id` already taken). Returns
   * the inserts made, the last the pair unless no draw stored both.
   */
  private async storedTwins(): Promise<Edit[]> {
    const homes = this.twinHomes.filter((c) => (this.ids.get(c)?.length ?? 0) > 0);
    const edits: Edit[] = [];
    for (let attempt = 0; homes.length > 0 && attempt < 20; attempt++) {
      const c = this.rng.pick(homes);
      const { edit, complete } = await this.copies(c, () => this.twins(c, true));
      if (edit) edits.push(edit);
      if (complete) break;
    }
    return edits;
  }

  /**
   * Copies of a live document of `c`, dated now, under the `_id`s `draw` gives; the edit (null when
   * none was stored or the source is gone), and whether every `_id` was stored.
   */
  private async copies(c: string, draw: () => Labelled[]): Promise<{ edit: Edit | null; complete: boolean }> {
    const sourceId = this.someId(c);
    const source = await this.load(c, sourceId);
    if (!source) return { edit: this.forget(c, sourceId), complete: false };
    const ids = draw();
    const inserted: string[] = [];
    for (const id of ids) {
      const now = new Date();
      const copy: Document = { ...source, _id: id.value, creation_date: now, update_date: now, ...this.uniqueFields(c) };
      try {
        await this.db.collection(c).insertOne(copy);
      } catch (e) {
        this.refuse(id.label, e);
        continue;
      }
      this.stored.set(id.label, (this.stored.get(id.label) ?? 0) + 1);
      this.ids.get(c)!.push(id.value);
      inserted.push(`${id.label} ${idText(id.value)}`);
    }
    if (inserted.length === 0) return { edit: null, complete: false };
    const edit = this.record('hostile_insert', c, ids[0]!.value, `copy of ${idText(sourceId)} as ${inserted.join(' and ')}`, [source]);
    return { edit, complete: inserted.length === ids.length };
  }

  /**
   * Two `_id`s of one text: the first may already be live (an ObjectId twin). `pairsOnly`: both new,
   * no ObjectId's hex (FerretDB refuses the hex of a live ObjectId as a duplicate `_id`).
   */
  private twins(c: string, pairsOnly = false): Labelled[] {
    const n = this.rng.int(1, 40);
    const day = new Date(Date.UTC(2024, 0, 1 + n));
    const live = this.someObjectId(c);
    const pairs: Labelled[][] = [
      [{ label: 'twin: Int32 n', value: n }, { label: 'twin: string "n"', value: String(n) }],
      [{ label: 'twin: Date', value: day }, { label: 'twin: ISO string of the Date', value: day.toISOString() }],
      [{ label: 'twin: true', value: true }, { label: 'twin: string "true"', value: 'true' }],
      [{ label: 'twin: Double n.5', value: n + 0.5 }, { label: 'twin: string "n.5"', value: String(n + 0.5) }],
      ...(live && !pairsOnly ? [[{ label: 'twin: string hex of a live ObjectId', value: live.toHexString() }]] : []),
    ];
    return this.rng.pick(pairs);
  }

  private uniqueFields(c: string): Document {
    if (c !== 'users') return {};
    this.emails += 1;
    return { email: `hostile.${this.round}.${this.emails}.${this.rng.below(1e9)}@example.org` };
  }

  /** A document deleted, half the time one whose `_id` is not an ObjectId. */
  private async delete(): Promise<Edit | null> {
    const c = this.rng.pick([...this.fields.keys()].filter((x) => (this.ids.get(x)?.length ?? 0) > KEEP_AT_LEAST));
    const list = this.ids.get(c)!;
    const others = list.filter((id) => !(id instanceof ObjectId));
    const id = others.length > 0 && this.rng.chance(0.5) ? this.rng.pick(others) : this.rng.pick(list);
    const doc = await this.load(c, id);
    if (!doc) return this.forget(c, id);
    if (await this.amongLastMenus(c, doc)) return null;
    await this.db.collection(c).deleteOne({ _id: id as never });
    list.splice(list.indexOf(id), 1);
    return this.record('hostile_delete', c, id, 'hard delete', [doc]);
  }

  /**
   * A menu no edit may delete or turn into another event type: menus (the one table with a filter,
   * `__t: menu`) keeps KEEP_AT_LEAST documents, as edits.ts keeps them (seed 25: `__t` of the sample's
   * only menu set to a hostile value, and load refused the empty live set).
   */
  private async amongLastMenus(c: string, doc: Document): Promise<boolean> {
    return c === 'events' && doc.__t === 'menu' && (await this.db.collection(c).countDocuments({ __t: 'menu' })) <= KEEP_AT_LEAST;
  }

  /** A field broken earlier set back to what it held (removed when it was absent). */
  private async restore(): Promise<Edit | null> {
    if (this.broken.length === 0) return null;
    const b = this.rng.pick(this.broken);
    this.broken = this.broken.filter((x) => x !== b);
    const doc = await this.load(b.collection, b.id);
    if (!doc) return null;
    const value: Labelled = { label: 'restored', value: b.original === undefined ? MISSING : b.original };
    if (!(await this.write(b.collection, b.id, b.path, value))) return null;
    return this.record('hostile_restore', b.collection, b.id, `${b.path} restored`, [doc]);
  }

  /** A document gone behind the editor's back (the ordinary edits deleted it): no longer picked. */
  private forget(c: string, id: unknown): null {
    const list = this.ids.get(c) ?? [];
    const at = list.indexOf(id);
    if (at >= 0) list.splice(at, 1);
    return null;
  }

  private record(kind: HostileKind, collection: string, id: unknown, detail: string, states: readonly Document[]): Edit {
    this.n += 1;
    const touches = states.flatMap((d) => Object.values(d).filter((v): v is ObjectId => v instanceof ObjectId).map((v) => v.toHexString()));
    const text = id instanceof ObjectId ? id.toHexString() : typeof id === 'string' ? id : idText(id);
    const keys = states.flatMap((d) => dedupeKeys(collection, d));
    return { round: this.round, n: this.n, kind, collection, id: text, detail, touches: [...new Set([text, ...touches])], keys };
  }
}

/** The value a dotted path names in a document (undefined: absent). */
function valueAt(doc: Document, path: string): unknown {
  let v: unknown = doc;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Document)[part];
  }
  return v;
}

/** Per collection: the fields pipeline.yaml maps (but `_id`), and the arrays its link tables read. */
function targetsOf(model: PipelineModel): { fields: Map<string, FieldTarget[]>; arrays: Map<string, ArrayTarget[]> } {
  const fields = new Map<string, FieldTarget[]>();
  const arrays = new Map<string, ArrayTarget[]>();
  const collectionOf = (table: string) => model.tables.get(table)!.collection;
  for (const name of model.loadOrder) {
    const table = model.tables.get(name)!;
    for (const column of table.columns) {
      if (column.source.kind !== 'field' || column.source.path === '_id') continue;
      const list = fields.get(table.collection) ?? [];
      if (list.some((f) => f.path === (column.source as { path: string }).path)) continue;
      list.push({ path: column.source.path, column, refCollection: column.foreignKey ? collectionOf(column.foreignKey.table) : null });
      fields.set(table.collection, list);
    }
    for (const a of table.explode?.arrays ?? []) {
      const item = table.columns.find((c) => c.name === a.itemColumn)!;
      const list = arrays.get(table.collection) ?? [];
      list.push({ field: a.field, refCollection: item.foreignKey ? collectionOf(item.foreignKey.table) : table.collection, idKey: a.itemIdKey, dateKey: a.itemDateKey });
      arrays.set(table.collection, list);
    }
  }
  return { fields, arrays };
}
