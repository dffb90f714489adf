// What every generated document may refer to, without holding any document in memory: an _id, a
// creation date and the few relations documents must agree on (a coaching's user, a user-quiz's
// quiz…) are pure functions of (seed, collection, index). Only small typed arrays are kept (the
// type of each event, quiz question and quiz, the role of each user), bounded by counts.
import { ObjectId } from 'bson';
import { hash, Rng } from './prng.ts';
import { planSample, SAMPLE_COLLECTIONS, type SampleCollection, type SamplePlan } from './plan.ts';

/** Creation dates spread over this window; update dates may run a little past its end. */
const WINDOW_START = Date.UTC(2019, 0, 7, 8, 0, 0);
const WINDOW_END = Date.UTC(2025, 5, 30, 18, 0, 0);
const SPAN = WINDOW_END - WINDOW_START;
const DAY_MS = 86_400_000;

/** Documents created before this date have the app's old shapes (legacy fields, plain ids…). */
export const LEGACY_BEFORE = Date.UTC(2021, 5, 1);

/** Share of references that point to a deleted document (the app never cleans them). */
const DANGLING_RATE = 0.005;

export const EVENT_TYPES = ['menu', 'webinar', 'individualChallenge', 'collectiveChallenge'] as const;
export const ROLES = ['CUSTOMER', 'RH', 'DIET', 'EXTERNAL_DIET', 'SUPER_ADMIN', 'ADMIN', 'SUPPORT'] as const;
const QUESTION_TYPES = [
  'QUIZZ_QUESTION_TYPE_BOOLEAN',
  'QUIZZ_QUESTION_TYPE_SCALE_1_10',
  'QUIZZ_QUESTION_TYPE_TEXT',
  'QUIZZ_QUESTION_TYPE_DOCUMENT',
  'QUIZZ_QUESTION_TYPE_NUMERIC',
  'QUIZZ_QUESTION_TYPE_ENUM_SINGLE',
  'QUIZZ_QUESTION_TYPE_ENUM_MULTIPLE',
  'QUIZZ_QUESTION_TYPE_TEXT_MULTIPLE',
] as const;
export type QuestionType = (typeof QUESTION_TYPES)[number];

const COLLECTION_INDEX = new Map<SampleCollection, number>(SAMPLE_COLLECTIONS.map((c, i) => [c, i]));

/** Salts for the pure relations, so two relations of one document draw independent numbers. */
const enum Salt {
  Created = 1,
  CoachingUser = 2,
  PeriodCoaching = 3,
  UserQuizzQuizz = 4,
  Role = 5,
  EventType = 6,
  QuestionType = 7,
  Doc = 8,
  Deleted = 9,
}

export class World {
  readonly seed: number;
  readonly plan: SamplePlan;
  /** 5 bytes of every ObjectId ("process unique" in MongoDB's layout), from the seed. */
  private readonly machine: Uint8Array;
  readonly eventTypes: Uint8Array;
  readonly menuEvents: Int32Array;
  readonly userRoles: Uint8Array;
  readonly dietUsers: Int32Array;
  readonly adminUsers: Int32Array;
  readonly questionTypes: Uint8Array;
  /** For enum questions, their rank among enum questions (question items are spread by rank); else -1. */
  readonly enumRank: Int32Array;
  readonly enumQuestionCount: number;
  private readonly enumQuestions: Int32Array;
  /** Items [0, questionItems) belong to enum questions; the rest to user answers. */
  readonly questionItems: number;

  constructor(scale: number, seed: number) {
    this.seed = seed >>> 0;
    const h = hash(this.seed, 0x5eed);
    this.machine = Uint8Array.of(h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff, hash(this.seed, 0x5eee) & 0xff);

    // Event types decide how many menus there are, which the plan needs for menurecipes.
    const typeOfEvent = (i: number): number =>
      i < EVENT_TYPES.length ? i : new Rng(hash(this.seed, Salt.EventType, i)).weighted([[0, 5], [1, 2], [2, 2], [3, 1]]);
    this.plan = planSample(scale, (events) => {
      let menus = 0;
      for (let i = 0; i < events; i++) if (typeOfEvent(i) === 0) menus++;
      return menus;
    });
    this.eventTypes = Uint8Array.from({ length: this.plan.events }, (_, i) => typeOfEvent(i));
    this.menuEvents = Int32Array.from(indicesWhere(this.eventTypes, (t) => t === 0));

    // The first users take every role once, so a small sample has all of them.
    this.userRoles = Uint8Array.from({ length: this.plan.users }, (_, i) =>
      i < ROLES.length
        ? i
        : new Rng(hash(this.seed, Salt.Role, i)).weighted([[0, 920], [1, 20], [2, 35], [3, 10], [4, 3], [5, 8], [6, 4]]),
    );
    this.dietUsers = Int32Array.from(indicesWhere(this.userRoles, (r) => r === 2 || r === 3));
    this.adminUsers = Int32Array.from(indicesWhere(this.userRoles, (r) => r >= 4));

    this.questionTypes = Uint8Array.from({ length: this.plan.quizzquestions }, (_, i) =>
      i < QUESTION_TYPES.length ? i : new Rng(hash(this.seed, Salt.QuestionType, i)).below(QUESTION_TYPES.length),
    );
    this.enumRank = new Int32Array(this.plan.quizzquestions).fill(-1);
    let rank = 0;
    for (let i = 0; i < this.plan.quizzquestions; i++) if (this.isEnum(i)) this.enumRank[i] = rank++;
    this.enumQuestionCount = rank;
    this.enumQuestions = Int32Array.from(indicesWhere(this.questionTypes, (t) => t === 5 || t === 6));
    this.questionItems = Math.min(this.plan.items, Math.ceil(this.plan.items / 2), rank * 6);
  }

  count(c: SampleCollection): number {
    return this.plan[c];
  }

  /** A fresh random stream for one document (or one aspect of it). */
  rng(c: SampleCollection, i: number, salt: number = Salt.Doc): Rng {
    return new Rng(hash(this.seed, COLLECTION_INDEX.get(c)!, i, salt));
  }

  /** Where index i falls in its collection's history, in [0, 1). */
  position(c: SampleCollection, i: number): number {
    return i / Math.max(1, this.count(c));
  }

  /**
   * Creation instant (ms) of document i. Increases with i, so older documents come first and a
   * child can pick parents created before it. Days follow their period, one a day.
   */
  createdAt(c: SampleCollection, i: number): number {
    if (c === 'days') {
      const periods = Math.max(1, this.count('periods'));
      const p = i % periods;
      const k = Math.floor(i / periods);
      const jitter = new Rng(hash(this.seed, COLLECTION_INDEX.get(c)!, i, Salt.Created)).int(6 * 3_600_000, 20 * 3_600_000);
      return Math.min(WINDOW_END, this.createdAt('periods', p) + k * DAY_MS + jitter);
    }
    const n = Math.max(1, this.count(c));
    const r = new Rng(hash(this.seed, COLLECTION_INDEX.get(c)!, i, Salt.Created)).next();
    return WINDOW_START + Math.floor(((i + r) / n) * SPAN);
  }

  /** The _id of document i: timestamp = its creation second, then the seed's 5 bytes, then a counter. */
  id(c: SampleCollection, i: number): ObjectId {
    return this.objectId(COLLECTION_INDEX.get(c)!, i, Math.floor(this.createdAt(c, i) / 1000));
  }

  /**
   * The _id of a document that was deleted: same layout, a counter past the collection's end, a
   * timestamp from the collection's history. Never equal to an existing _id.
   */
  deletedId(c: SampleCollection, rng: Rng): ObjectId {
    const n = Math.max(1, this.count(c));
    const k = rng.below(1000);
    return this.objectId(COLLECTION_INDEX.get(c)!, n + k, Math.floor(this.createdAt(c, rng.below(n)) / 1000));
  }

  /** The _id of an embedded subdocument (registered_events items, recipe ingredients…). */
  subId(c: SampleCollection, i: number, j: number, createdMs: number): ObjectId {
    return this.objectId(0x80 | COLLECTION_INDEX.get(c)!, (i * 16 + j) & 0xffffff, Math.floor(createdMs / 1000));
  }

  private objectId(tag: number, counter: number, seconds: number): ObjectId {
    const b = new Uint8Array(12);
    b[0] = (seconds >>> 24) & 0xff;
    b[1] = (seconds >>> 16) & 0xff;
    b[2] = (seconds >>> 8) & 0xff;
    b[3] = seconds & 0xff;
    b[4] = this.machine[0]!;
    b[5] = this.machine[1]!;
    b[6] = this.machine[2]!;
    b[7] = this.machine[3]! ^ tag;
    b[8] = this.machine[4]!;
    b[9] = (counter >>> 16) & 0xff;
    b[10] = (counter >>> 8) & 0xff;
    b[11] = counter & 0xff;
    return new ObjectId(b);
  }

  /** A reference to document `i` of `c`, or (rarely) to a deleted one. */
  ref(rng: Rng, c: SampleCollection, i: number): ObjectId {
    return rng.chance(DANGLING_RATE) ? this.deletedId(c, rng) : this.id(c, i);
  }

  /** Index of a parent created before a child at `position` (uniform among those). */
  parentIndex(rng: Rng, c: SampleCollection, position: number): number {
    const n = this.count(c);
    return rng.below(Math.max(1, Math.min(n, Math.ceil(position * n) + 1)));
  }

  /** A reference to a random document of `c` created before `position`; dangles at DANGLING_RATE. */
  refBefore(rng: Rng, c: SampleCollection, position: number): ObjectId {
    return this.ref(rng, c, this.parentIndex(rng, c, position));
  }

  /** `k` references to distinct documents of `c` (fewer if `c` is smaller), some dangling. */
  refs(rng: Rng, c: SampleCollection, k: number, position = 1): ObjectId[] {
    const n = this.count(c);
    const pool = Math.max(1, Math.min(n, Math.ceil(position * n) + 1));
    const take = Math.min(k, pool);
    const picked = new Set<number>();
    // Rejection sampling is fast while take ≪ pool; a dense pick walks a random start instead.
    if (take * 2 > pool) {
      const start = rng.below(pool);
      for (let j = 0; j < take; j++) picked.add((start + j) % pool);
    } else {
      while (picked.size < take) picked.add(rng.below(pool));
    }
    return [...picked].map((i) => this.ref(rng, c, i));
  }

  // ── Relations that several collections must agree on ──────────────────────────────────────────

  userOfCoaching(c: number): number {
    return this.parentIndex(new Rng(hash(this.seed, Salt.CoachingUser, c)), 'users', this.position('coachings', c));
  }

  coachingOfPeriod(p: number): number {
    return this.parentIndex(new Rng(hash(this.seed, Salt.PeriodCoaching, p)), 'coachings', this.position('periods', p));
  }

  quizzOfUserQuizz(u: number): number {
    return new Rng(hash(this.seed, Salt.UserQuizzQuizz, u)).below(Math.max(1, this.count('quizzs')));
  }

  /** userquizzquestion j belongs to userquizz j mod U (so each userquizz lists its own). */
  userQuizzOfQuestion(j: number): number {
    return j % Math.max(1, this.count('userquizzs'));
  }

  /** quizzquestion q belongs to quizz q mod Q. */
  quizzOfQuestion(q: number): number {
    return q % Math.max(1, this.count('quizzs'));
  }

  /** The k-th question of quizz `quizz`, cycling through its questions (or any question if it has none). */
  questionOfQuizz(quizz: number, k: number, rng: Rng): number {
    const qq = this.count('quizzquestions');
    const quizzes = Math.max(1, this.count('quizzs'));
    const own = quizz < qq ? Math.floor((qq - 1 - quizz) / quizzes) + 1 : 0;
    return own > 0 ? quizz + (k % own) * quizzes : rng.below(Math.max(1, qq));
  }

  isEnum(q: number): boolean {
    const t = this.questionTypes[q];
    return t === 5 || t === 6;
  }

  questionType(q: number): QuestionType {
    return QUESTION_TYPES[this.questionTypes[q] ?? 0]!;
  }

  /** An item of enum question q (question items are dealt round-robin over enum questions). */
  itemOfQuestion(q: number, rng: Rng): number {
    const rank = this.enumRank[q] ?? -1;
    const per = this.enumQuestionCount > 0 ? Math.floor((this.questionItems - 1 - rank) / this.enumQuestionCount) + 1 : 0;
    if (rank < 0 || rank >= this.questionItems || per <= 0) return rng.below(Math.max(1, this.count('items')));
    return rank + rng.below(per) * this.enumQuestionCount;
  }

  /** The enum question an item of the first part belongs to. */
  questionOfItem(item: number): number {
    return this.enumQuestions[item % Math.max(1, this.enumQuestionCount)] ?? 0;
  }
}

function indicesWhere(values: Uint8Array, test: (v: number) => boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < values.length; i++) if (test(values[i]!)) out.push(i);
  return out;
}
