// What the random edits (edits.ts) change, per collection: the fields pipeline.yaml maps with a
// valid value and, for some, a value transform rejects (the type contract in README.md); the
// references (foreign keys) and the arrays (link tables); where inserts, deletes and late syncs land.
import { ObjectId, type Document } from 'mongodb';
import type { Rng } from '../../sample/prng.ts';
import { parisDayNumber, parisMidnight } from '../../sample/paris-day.ts';
import { FIRSTNAMES, LASTNAMES } from '../../sample/text.ts';

/** What a field spec draws from: the edit generator's seeded stream and its view of the database. */
export interface ValueSource {
  readonly rng: Rng;
  /** A random live _id of a collection, or null when it has none. */
  someId(c: string): ObjectId | null;
  /** An instant between `minDays` and `maxDays` days ago. */
  pastDate(minDays: number, maxDays: number): Date;
}

type Value = (g: ValueSource) => unknown;

/** A mapped scalar field: how to give it a valid value, and (optionally) one transform rejects. */
export interface FieldSpec {
  readonly field: string;
  readonly valid: Value;
  readonly bad?: Value;
}

/** A mapped reference field (a foreign key column): valid values are ids of `ref`. */
export interface RefSpec {
  readonly field: string;
  readonly ref: string;
  /** The referenced rows are the documents matching this (menus are the events whose __t is menu). */
  readonly refFilter?: Document;
}

/** A mapped array (a link table); subdocument items hold their id under idKey and may carry a date. */
export interface ArraySpec {
  readonly field: string;
  readonly ref: string;
  readonly idKey?: string;
  readonly dateKey?: string;
}

const text = (choices: readonly string[]): Value => (g) => g.rng.pick(choices);
const longText = (n: number): Value => (g) => `${g.rng.pick(['Description : ', 'Note : '])}${'texte trop long '.repeat(Math.ceil(n / 16))}`;
const aDate: Value = (g) => g.pastDate(30, 900);
const notADate: Value = (g) => g.pastDate(30, 900).toISOString().slice(0, 10);
const populated = (ref: string): Value => (g) => ({ _id: g.someId(ref) ?? new ObjectId() });

const NAMES = ['Salade niçoise', 'Poulet basquaise', 'Gaspacho', 'Lentilles corail', 'Hachis parmentier', 'Tarte aux pommes'];
const STATUSES = ['COACHING_STATUS_NOT_STARTED', 'COACHING_STATUS_STARTED', 'COACHING_STATUS_FINISHED', 'COACHING_STATUS_DROPPED', 'COACHING_STATUS_STOPPED'];

/** The scalar fields pipeline.yaml maps, per collection. */
export const FIELDS: Readonly<Record<string, readonly FieldSpec[]>> = {
  users: [
    { field: 'firstname', valid: text(FIRSTNAMES), bad: () => null },
    { field: 'lastname', valid: text(LASTNAMES), bad: longText(300) },
    { field: 'phone', valid: (g) => `+336${String(g.rng.int(10_000_000, 99_999_999))}` },
    { field: 'birthday', valid: (g) => parisMidnight(g.rng.int(-7000, 12000)), bad: notADate },
    { field: 'role', valid: text(['CUSTOMER', 'RH', 'DIET', 'ADMIN']), bad: () => null },
    { field: 'insurer', valid: text(['MGEN', 'AXA', 'Allianz']) },
  ],
  companies: [{ field: 'name', valid: text(['Dupont SAS', 'Mutuelle Générale', 'Lefèvre & Fils']), bad: longText(300) }],
  offers: [
    { field: 'name', valid: text(['Offre découverte', 'Suivi annuel']) },
    { field: 'duration', valid: (g) => (g.rng.chance(0.5) ? g.rng.pick([30, 90, 365]) : g.rng.pick(['30', '90'])), bad: () => '3 mois' },
    { field: 'coaching_credit', valid: (g) => g.rng.int(1, 12), bad: () => 2.5 },
  ],
  targets: [{ field: 'name', valid: text(['Mieux dormir', 'Réduire le sucre', 'Diabète']) }],
  recipes: [{ field: 'name', valid: text(NAMES), bad: () => null }],
  contents: [
    { field: 'name', valid: text(NAMES) },
    { field: 'type', valid: text(['ARTICLE', 'VIDEO', 'PODCAST']), bad: () => ['ARTICLE'] },
  ],
  events: [
    { field: 'name', valid: text(['Menu de la semaine 12', 'Webinar sommeil', 'Défi 10 000 pas']), bad: longText(300) },
    { field: 'start_date', valid: aDate, bad: notADate },
    { field: 'end_date', valid: aDate },
  ],
  messages: [{ field: 'content', valid: text(['Bonjour !', 'Merci, à jeudi.', 'Voici mon menu de la semaine']), bad: () => null }],
  coachings: [{ field: 'status', valid: text(STATUSES), bad: (g) => g.rng.pick([null, { code: 'STARTED' }, 'x'.repeat(120)]) }],
  appointments: [
    { field: 'start_date', valid: aDate, bad: notADate },
    { field: 'validated', valid: (g) => g.rng.chance(0.5), bad: () => 'true' },
    { field: 'order', valid: (g) => (g.rng.chance(0.5) ? -1 : g.rng.int(1, 12)), bad: () => 1.5 },
  ],
  periods: [
    { field: 'number_of_days', valid: (g) => g.rng.pick([7, 14, 21, 28]), bad: () => 70000 },
    { field: 'status', valid: text(['active', 'finished', 'pending']) },
  ],
  userquizzquestions: [
    { field: 'text_answer', valid: text(['Oui', 'Plutôt bien', '']) },
    { field: 'boolean_answer', valid: (g) => g.rng.chance(0.5), bad: () => 1 },
    { field: 'comment', valid: text(['RAS', 'À revoir', '']) },
  ],
  items: [{ field: 'text', valid: text(['Pomme', 'Riz complet', 'Yaourt']), bad: () => null }],
  days: [
    { field: 'is_success', valid: (g) => g.rng.chance(0.5), bad: () => 'false' },
    { field: 'date', valid: (g) => parisMidnight(parisDayNumber(g.pastDate(1, 900).getTime())), bad: notADate },
  ],
  coachinglogbooks: [
    { field: 'day', valid: (g) => parisMidnight(parisDayNumber(g.pastDate(1, 900).getTime())), bad: notADate },
    // A populated reference saved by mistake: a subdocument where an id belongs (not_a_string).
    { field: 'user', valid: (g) => g.someId('users'), bad: populated('users') },
  ],
  menurecipes: [
    // Not mapped: saving it only moves update_date, which decides the pair's latest document.
    { field: 'period', valid: text(['0', '1']) },
    { field: 'recipe', valid: (g) => g.someId('recipes'), bad: populated('recipes') },
  ],
};

export const REFS: Readonly<Record<string, readonly RefSpec[]>> = {
  users: [{ field: 'company', ref: 'companies' }],
  events: [{ field: 'company', ref: 'companies' }],
  messages: [
    { field: 'sender', ref: 'users' },
    { field: 'receiver', ref: 'users' },
  ],
  userquizzs: [{ field: 'quizz', ref: 'quizzs' }],
  coachings: [
    { field: 'user', ref: 'users' },
    { field: 'offer', ref: 'offers' },
    { field: 'diet', ref: 'users' },
  ],
  coachinglogbooks: [{ field: 'user', ref: 'users' }],
  menurecipes: [
    { field: 'menu', ref: 'events', refFilter: { __t: 'menu' } },
    { field: 'recipe', ref: 'recipes' },
  ],
  appointments: [
    { field: 'coaching', ref: 'coachings' },
    { field: 'appointment_type', ref: 'appointmenttypes' },
  ],
  periods: [{ field: 'coaching', ref: 'coachings' }],
  days: [
    { field: 'period', ref: 'periods' },
    { field: 'userQuizz', ref: 'userquizzs' },
  ],
  items: [{ field: 'quizzQuestion', ref: 'quizzquestions' }],
  userquizzquestions: [{ field: 'quizz_question', ref: 'quizzquestions' }],
};

export const ARRAYS: Readonly<Record<string, readonly ArraySpec[]>> = {
  users: [
    { field: 'registered_events', ref: 'events', idKey: 'event', dateKey: 'date' },
    { field: 'specificity_targets', ref: 'targets' },
    { field: 'health_targets', ref: 'targets' },
    { field: 'targets', ref: 'targets' },
  ],
  contents: [{ field: 'viewed_by', ref: 'users' }],
  days: [
    { field: 'contents', ref: 'contents' },
    { field: 'main_logbooks', ref: 'userquizzs' },
  ],
  coachings: [{ field: 'reasons', ref: 'targets' }],
  quizzs: [{ field: 'questions', ref: 'quizzquestions' }],
  userquizzs: [{ field: 'questions', ref: 'userquizzquestions' }],
};

/** Where inserts, deletes and late syncs land (the app's busiest collections weigh most). */
export const INSERT_WEIGHTS: readonly (readonly [string, number])[] = [
  ['coachinglogbooks', 30], ['menurecipes', 8], ['messages', 10], ['users', 8], ['appointments', 6], ['userquizzquestions', 6],
  ['days', 6], ['coachings', 4], ['events', 4], ['contents', 3], ['recipes', 3], ['companies', 2], ['periods', 3], ['items', 3], ['userquizzs', 3],
];
export const DELETE_WEIGHTS = INSERT_WEIGHTS;
export const LATE_SYNC_WEIGHTS: readonly (readonly [string, number])[] = [['coachinglogbooks', 60], ['messages', 15], ['appointments', 15], ['menurecipes', 10]];
export const COLLECTIONS = [...new Set([...INSERT_WEIGHTS.map(([c]) => c), ...Object.keys(FIELDS), ...Object.keys(REFS), ...Object.keys(ARRAYS), 'quizzquestions', 'offers', 'appointmenttypes', 'targets', 'quizzs'])];
/** Deletes and type changes never empty a collection, nor menus (load refuses an empty live set for a table holding rows). */
export const KEEP_AT_LEAST = 3;
