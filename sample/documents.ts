// One generator per collection: documents shaped as the Wappizy app (Mongoose) stores them, with
// the fields the app keeps beyond those the pipeline reads and the variations a production database
// holds (legacy shapes, mixed array item forms, absent optional fields, dangling references…).
// A document depends only on (seed, collection, index): see world.ts.
import { Int32, type Document, type ObjectId } from 'bson';
import { parisDayNumber, parisMidnight } from './paris-day.ts';
import type { SampleCollection } from './plan.ts';
import { MENU_SLOTS } from './plan.ts';
import type { Rng } from './prng.ts';
import {
  capitalize,
  dishName,
  EMAIL_DOMAINS,
  emailSlug,
  FIRSTNAMES,
  foodName,
  LASTNAMES,
  LONGEST_NAME,
  longText,
  pictureUrl,
  sentence,
} from './text.ts';
import { EVENT_TYPES, LEGACY_BEFORE, ROLES, World } from './world.ts';

const DAY_MS = 86_400_000;
const MIN_MS = 60_000;

type Build = (w: World, i: number, rng: Rng) => Document;

/** creation_date ≤ update_date; a third of the documents were never modified. */
function stamps(w: World, c: SampleCollection, i: number, rng: Rng): { created: number; updated: number } {
  const created = w.createdAt(c, i);
  const updated = rng.chance(0.35) ? created : created + Math.floor(rng.next() ** 3 * 400 * DAY_MS);
  return { created, updated };
}

function tail(rng: Rng, created: number, updated: number): Document {
  return {
    creation_date: new Date(created),
    update_date: new Date(updated),
    __v: new Int32(rng.weighted([[0, 70], [1, 20], [2, 7], [3, 3]])),
  };
}

function phone(rng: Rng): string {
  let digits = '';
  for (let k = 0; k < 8; k++) digits += String(rng.below(10));
  return `+33${rng.chance(0.8) ? '6' : '7'}${digits}`;
}

/** A day-only date: Paris midnight, `offsetDays` after the Paris day of `instant`. */
function dayOf(instant: number, offsetDays = 0): Date {
  return parisMidnight(parisDayNumber(instant) + offsetDays);
}

function hex(rng: Rng, length: number): string {
  let out = '';
  while (out.length < length) out += Math.floor(rng.next() * 0x100000000).toString(16).padStart(8, '0');
  return out.slice(0, length);
}

// ── Reference collections ────────────────────────────────────────────────────────────────────────

const ingredients: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'ingredients', i, rng);
  return {
    _id: w.id('ingredients', i),
    name: foodName(rng),
    unit: rng.pick(['g', 'ml', 'pièce', 'c. à soupe', 'pincée']),
    // Mongoose Numbers: integers land as int32, the rest as double.
    calories: rng.chance(0.5) ? rng.int(5, 900) : Math.round(rng.next() * 9000) / 10,
    ...(rng.chance(0.4) ? { picture: pictureUrl(rng, 'ingredients') } : {}),
    ...tail(rng, created, updated),
  };
};

const appointmenttypes: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'appointmenttypes', i, rng);
  const agendaId = 100 + i * 7 + rng.below(7);
  return {
    _id: w.id('appointmenttypes', i),
    title: rng.pick(['Bilan initial', 'Suivi diététique', 'Rendez-vous "express"', 'Bilan de fin, 45 min', 'Téléconsultation\tvidéo', 'Suivi nutrition']),
    duration: rng.pick([30, 45, 60]),
    // Older documents hold a Number, newer ones the same id as a String.
    smartagenda_id: i < Math.ceil(w.count('appointmenttypes') / 2) ? agendaId : String(agendaId),
    ...tail(rng, created, updated),
  };
};

const companies: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'companies', i, rng);
  const name = `${rng.pick(LASTNAMES)} ${rng.pick(['SAS', 'SA', '& Fils', 'Groupe', 'Mutuelle', 'Industries', 'Conseil'])}`;
  return {
    _id: w.id('companies', i),
    name,
    code: hex(rng, 6).toUpperCase(),
    activity: rng.pick(['Banque', 'Assurance', 'Industrie', 'Services', 'Santé', 'Commerce']),
    size: rng.pick(['1-10', '11-50', '51-200', '201-1000', '1000+']),
    ...(rng.chance(0.5) ? { picture: pictureUrl(rng, 'companies') } : {}),
    ...tail(rng, created, updated),
  };
};

const offers: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'offers', i, rng);
  const days = rng.pick([30, 60, 90, 180, 365]);
  return {
    _id: w.id('offers', i),
    name: rng.pick(['Offre découverte', 'Coaching 3 mois', 'Premium, sans engagement', 'Entreprise "bien-être"', 'Suivi annuel']),
    // The app once saved the duration from a text field: a numeric string on some documents.
    duration: i === 1 || rng.chance(0.25) ? String(days) : days,
    coaching_credit: rng.int(1, 12),
    price: rng.pick([0, 49.9, 99, 149.5, 299]),
    ...(rng.chance(0.5) ? { company: w.refBefore(rng, 'companies', 1) } : {}),
    description: sentence(rng),
    ...tail(rng, created, updated),
  };
};

const categories: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'categories', i, rng);
  const hasType = i !== 1 && rng.chance(0.7);
  return {
    _id: w.id('categories', i),
    name: capitalize(rng.pick(['alimentation', 'sommeil', 'activité physique', 'stress', 'recettes "faciles"', 'bien-être, détente', 'santé'])),
    ...(hasType ? { type: rng.pick(['CONTENT', 'RECIPE', 'TARGET']) } : {}),
    ...(rng.chance(0.5) ? { picture: pictureUrl(rng, 'categories') } : {}),
    ...tail(rng, created, updated),
  };
};

const targets: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'targets', i, rng);
  return {
    _id: w.id('targets', i),
    name: rng.pick(['Perdre du poids', 'Mieux dormir', 'Réduire le sucre', 'Manger équilibré', 'Diabète', 'Cholestérol', 'Grossesse', 'Sport, endurance', 'Troubles "digestifs"', 'Végétarien']),
    ...(rng.chance(0.6) ? { category: w.refBefore(rng, 'categories', 1) } : {}),
    ...(rng.chance(0.5) ? { picture: pictureUrl(rng, 'targets') } : {}),
    ...tail(rng, created, updated),
  };
};

const recipes: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'recipes', i, rng);
  const n = rng.int(2, 6);
  const items: Document[] = [];
  for (let k = 0; k < n; k++) {
    items.push({ _id: w.subId('recipes', i, k, created), ingredient: w.refBefore(rng, 'ingredients', 1), quantity: rng.int(1, 500) });
  }
  return {
    _id: w.id('recipes', i),
    // One recipe carries the longest name a VARCHAR(255) holds, in two-byte characters.
    name: i === 3 ? LONGEST_NAME : dishName(rng),
    description: sentence(rng),
    ...(rng.chance(0.7) ? { picture: pictureUrl(rng, 'recipes') } : {}),
    duration: rng.pick([10, 15, 20, 30, 45, 60]),
    ingredients: items,
    ...tail(rng, created, updated),
  };
};

const CONTENT_TYPES = ['ARTICLE', 'INFOGRAPHY', 'VIDEO', 'PODCAST', 'DOCUMENT'] as const;

const contents: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'contents', i, rng);
  // A tenth of the contents were never opened: an empty (present) array.
  const readers = i === 0 || rng.chance(0.1) ? 0 : rng.int(1, Math.min(60, Math.max(1, w.count('users'))));
  return {
    _id: w.id('contents', i),
    name: dishName(rng, 0.1),
    type: i < CONTENT_TYPES.length ? CONTENT_TYPES[i]! : rng.pick(CONTENT_TYPES),
    viewed_by: w.refs(rng, 'users', readers),
    ...(rng.chance(0.8) ? { picture: pictureUrl(rng, 'contents') } : {}),
    description: sentence(rng),
    categories: w.refs(rng, 'categories', rng.int(0, 2)),
    default: rng.chance(0.2),
    ...tail(rng, created, updated),
  };
};

const QUIZZ_TYPES = ['QUIZZ_TYPE_LOGBOOK', 'QUIZZ_TYPE_PROGRESS', 'QUIZZ_TYPE_PATIENT', 'QUIZZ_TYPE_ASSESSMENT', 'QUIZZ_TYPE_IMPACT', 'QUIZZ_TYPE_HEALTH'] as const;

const quizzs: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'quizzs', i, rng);
  const questions: ObjectId[] = [];
  const quizzes = Math.max(1, w.count('quizzs'));
  for (let q = i; q < w.count('quizzquestions'); q += quizzes) questions.push(w.ref(rng, 'quizzquestions', q));
  return {
    _id: w.id('quizzs', i),
    name: rng.pick(['Bilan de départ', 'Journal de bord', 'Questionnaire "impact"', 'Suivi hebdomadaire', 'Mon assiette, mes habitudes']),
    // The legacy _HEALTH type survives on old documents.
    type: i < QUIZZ_TYPES.length ? QUIZZ_TYPES[i]! : rng.weighted(QUIZZ_TYPES.map((t, k) => [t, k === 5 ? 1 : 5] as const)),
    questions,
    description: sentence(rng),
    ...tail(rng, created, updated),
  };
};

const quizzquestions: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'quizzquestions', i, rng);
  const type = w.questionType(i);
  return {
    _id: w.id('quizzquestions', i),
    title: rng.pick([
      'Combien de verres d\'eau buvez-vous par jour ?',
      'Avez-vous mangé des légumes aujourd\'hui ?',
      'Votre niveau de stress, de 1 à 10 ?',
      'Décrivez votre petit-déjeuner\n(aliments, quantités)',
      'Quel est votre poids (kg) ?',
      'Quelle activité "sportive" pratiquez-vous ?',
      'Ajoutez une photo de votre assiette',
      'Qu’avez-vous ressenti ? 😊',
    ]),
    type,
    ...(type === 'QUIZZ_QUESTION_TYPE_SCALE_1_10' ? { min: 1, max: 10 } : {}),
    ...(rng.chance(0.2) ? { picture: pictureUrl(rng, 'questions') } : {}),
    ...tail(rng, created, updated),
  };
};

// ── Core entities ────────────────────────────────────────────────────────────────────────────────

const events: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'events', i, rng);
  const type = EVENT_TYPES[w.eventTypes[i]!]!;
  let start: Date;
  let end: Date;
  let specific: Document;
  if (type === 'menu') {
    start = dayOf(created, rng.int(1, 10));
    end = new Date(start.getTime() + 7 * DAY_MS);
    specific = { description: sentence(rng) };
  } else if (type === 'webinar') {
    const s = created + rng.int(2, 30) * DAY_MS;
    start = new Date(s - (s % (30 * MIN_MS)));
    end = new Date(start.getTime() + rng.pick([45, 60, 90]) * MIN_MS);
    specific = { url: `https://meet.example.org/${hex(rng, 10)}`, companies: w.refs(rng, 'companies', rng.int(0, 3)) };
  } else {
    start = dayOf(created, rng.int(1, 15));
    end = new Date(start.getTime() + rng.pick([7, 14, 21, 30]) * DAY_MS);
    specific = { description: sentence(rng), points: rng.pick([10, 20, 50]) };
    // Only collective challenges belong to one company.
    if (type === 'collectiveChallenge') specific = { ...specific, company: w.refBefore(rng, 'companies', w.position('events', i)) };
  }
  return {
    _id: w.id('events', i),
    name: type === 'menu' ? `Menu de la semaine ${rng.int(1, 52)}` : dishName(rng, 0.15),
    start_date: start,
    end_date: end,
    ...(rng.chance(0.6) ? { picture: pictureUrl(rng, 'events') } : {}),
    ...specific,
    __t: type,
    ...tail(rng, created, updated),
  };
};

const users: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'users', i, rng);
  const legacy = created < LEGACY_BEFORE;
  const role = ROLES[w.userRoles[i]!]!;
  const firstname = rng.pick(FIRSTNAMES);
  const lastname = rng.pick(LASTNAMES);
  const local = [emailSlug(firstname), emailSlug(lastname)].filter((s) => s !== '').join(rng.pick(['.', '_', '']));
  const email = `${local || 'user'}${i}@${rng.pick(EMAIL_DOMAINS)}`;
  const position = w.position('users', i);

  // Registered events: plain ids on old documents, { _id, event, date } on current ones, and both
  // in one array for users who registered before and after the change.
  const eventCount = rng.chance(0.5) ? 0 : rng.int(1, 5);
  const eventRefs = w.refs(rng, 'events', eventCount);
  const form = i === 0 ? 'mixed' : legacy ? (rng.chance(0.3) ? 'mixed' : 'plain') : rng.chance(0.1) ? 'mixed' : 'sub';
  const registered: (ObjectId | Document)[] = eventRefs.map((event, k) => {
    const plain = form === 'plain' || (form === 'mixed' && k % 2 === 0);
    if (plain) return event;
    const date = new Date(Math.min(updated, created + rng.int(0, 300) * DAY_MS));
    return { _id: w.subId('users', i, k, date.getTime()), event, date };
  });
  // Rarely the same event twice (once as an id, once as a subdocument): the app never deduplicated.
  if (eventRefs.length > 0 && (i === 0 || rng.chance(0.005))) {
    registered.push({ _id: w.subId('users', i, 15, updated), event: eventRefs[0]!, date: new Date(updated) });
  }

  const doc: Document = {
    _id: w.id('users', i),
    firstname,
    lastname,
    email: email.toLowerCase(),
    ...(rng.chance(0.85) ? { phone: phone(rng) } : {}),
    ...(rng.chance(0.8) ? { birthday: parisMidnight(rng.int(-7300, 12800)) } : {}),
    role,
    ...(role === 'RH' || rng.chance(0.55) ? { company: w.refBefore(rng, 'companies', position) } : {}),
    ...(i === 1 || rng.chance(0.08) ? { insurer: rng.pick(['MGEN', 'Harmonie Mutuelle', 'AXA', 'Malakoff Humanis', 'Allianz']) } : {}),
    ...(i === 1 || rng.chance(0.06) ? { population: rng.pick(['SALARIE', 'AYANT_DROIT', 'RETRAITE', 'ÉTUDIANT']) } : {}),
    ...(i === 2 || rng.chance(0.03) ? { sso_id: `${hex(rng, 8)}-${hex(rng, 4)}-${hex(rng, 4)}-${hex(rng, 12)}` } : {}),
    ...(rng.chance(0.3) ? { picture: pictureUrl(rng, 'users') } : {}),
    password: `$2a$10$${hex(rng, 53)}`,
    ...(legacy && rng.chance(0.3) ? {} : { cguAccepted: true }),
    gender: rng.pick(['FEMALE', 'MALE', 'OTHER']),
    registered_events: registered,
  };
  // Targets: `targets[]` only on legacy documents; current ones hold `objective_targets[]`.
  if (legacy || i === 0) doc.targets = w.refs(rng, 'targets', rng.int(1, 3));
  else doc.objective_targets = w.refs(rng, 'targets', rng.int(0, 3));
  doc.specificity_targets = rng.chance(0.4) || i === 0 ? w.refs(rng, 'targets', rng.int(1, 2)) : [];
  doc.health_targets = rng.chance(0.25) || i === 0 ? w.refs(rng, 'targets', rng.int(1, 2)) : [];
  doc.last_login = new Date(updated);
  return { ...doc, ...tail(rng, created, updated) };
};

const userquizzs: Build = (w, u, rng) => {
  const { created, updated } = stamps(w, 'userquizzs', u, rng);
  const questions: ObjectId[] = [];
  const step = Math.max(1, w.count('userquizzs'));
  for (let j = u; j < w.count('userquizzquestions'); j += step) questions.push(w.ref(rng, 'userquizzquestions', j));
  if (rng.chance(0.005)) questions.push(w.deletedId('userquizzquestions', rng));
  const quizz = w.quizzOfUserQuizz(u);
  return {
    _id: w.id('userquizzs', u),
    quizz: w.ref(rng, 'quizzs', quizz),
    user: w.refBefore(rng, 'users', w.position('userquizzs', u)),
    questions,
    ...(rng.chance(0.5) ? { completed: rng.chance(0.7) } : {}),
    ...tail(rng, created, updated),
  };
};

const messages: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'messages', i, rng);
  const position = w.position('messages', i);
  const customer = w.refBefore(rng, 'users', position);
  const diets = w.dietUsers;
  const coach = diets.length > 0 ? w.ref(rng, 'users', diets[rng.below(diets.length)]!) : w.refBefore(rng, 'users', position);
  const fromCustomer = rng.chance(0.5);
  return {
    _id: w.id('messages', i),
    sender: fromCustomer ? customer : coach,
    receiver: fromCustomer ? coach : customer,
    content: rng.chance(0.01) ? longText(rng) : i === 1 ? '\\.' : sentence(rng),
    ...(rng.chance(0.05) ? { attachment: pictureUrl(rng, 'attachments') } : {}),
    ...(rng.chance(0.6) ? { seen: true } : {}),
    ...tail(rng, created, updated),
  };
};

const COACHING_STATUSES = [
  'COACHING_STATUS_NOT_STARTED',
  'COACHING_STATUS_STARTED',
  'COACHING_STATUS_FINISHED',
  'COACHING_STATUS_DROPPED',
  'COACHING_STATUS_STOPPED',
] as const;

const coachings: Build = (w, c, rng) => {
  const { created, updated } = stamps(w, 'coachings', c, rng);
  const position = w.position('coachings', c);
  const diets = w.dietUsers;
  const doc: Document = {
    _id: w.id('coachings', c),
    user: w.ref(rng, 'users', w.userOfCoaching(c)),
    ...(diets.length > 0 && c !== 0 && rng.chance(0.6) ? { diet: w.ref(rng, 'users', diets[rng.below(diets.length)]!) } : {}),
    offer: w.refBefore(rng, 'offers', 1),
    ...(c !== 0 && rng.chance(0.5) ? { assessment_quizz: w.refBefore(rng, 'userquizzs', position) } : {}),
    status: c < COACHING_STATUSES.length ? COACHING_STATUSES[c]! : rng.weighted(COACHING_STATUSES.map((s, k) => [s, [2, 4, 5, 1, 1][k]!] as const)),
    reasons: w.refs(rng, 'targets', rng.int(0, 3)),
  };
  // health_reason survives only on documents from before it was dropped.
  if (c === 1 || (created < LEGACY_BEFORE && rng.chance(0.6))) doc.health_reason = w.refs(rng, 'targets', rng.int(1, 2));
  if (rng.chance(0.3)) doc.mood = rng.int(1, 5);
  return { ...doc, ...tail(rng, created, updated) };
};

// ── Dependent data ───────────────────────────────────────────────────────────────────────────────

interface LogbookKey {
  readonly user: number;
  readonly coaching: number;
  readonly day: number;
}

/**
 * coachinglogbooks need memory of recent keys: several documents per (user, day) are normal, and
 * they are written close together. A ring of the last keys is enough (bounded).
 */
function* coachinglogbooks(w: World): Generator<Document> {
  const recent: LogbookKey[] = [];
  const n = w.count('coachinglogbooks');
  for (let i = 0; i < n; i++) {
    const rng = w.rng('coachinglogbooks', i);
    const { created, updated } = stamps(w, 'coachinglogbooks', i, rng);
    let key: LogbookKey;
    if (recent.length > 0 && (i === 1 || rng.chance(0.06))) {
      key = recent[rng.below(recent.length)]!;
    } else {
      const coaching = w.parentIndex(rng, 'coachings', w.position('coachinglogbooks', i));
      key = { user: w.userOfCoaching(coaching), coaching, day: parisDayNumber(created) - (rng.chance(0.2) ? 1 : 0) };
      recent.push(key);
      if (recent.length > 32) recent.shift();
    }
    // ≈1.4 % have no user (coaching only), a few a user and no coaching, most both.
    const shape = i === 0 ? 'coaching' : i === 2 ? 'user' : rng.weighted([['both', 93], ['coaching', 1.4], ['user', 5.6]] as const);
    yield {
      _id: w.id('coachinglogbooks', i),
      day: parisMidnight(key.day),
      ...(shape !== 'coaching' ? { user: w.ref(rng, 'users', key.user) } : {}),
      ...(shape !== 'user' ? { coaching: w.ref(rng, 'coachings', key.coaching) } : {}),
      logbook: w.refBefore(rng, 'userquizzs', w.position('coachinglogbooks', i)),
      ...tail(rng, created, updated),
    };
  }
}

const menurecipes: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'menurecipes', i, rng);
  const menus = w.menuEvents.length;
  const m = i % menus;
  const slot = Math.floor(i / menus);
  // A slot's recipe is a pure function of (menu, slot); a slot may repeat an earlier slot's recipe,
  // so the same recipe appears twice in one menu.
  const recipeOf = (s: number): number => w.rng('recipes', m * MENU_SLOTS + s, 0x4d).below(Math.max(1, w.count('recipes')));
  const from = slot > 0 && ((m === 0 && slot === 1) || rng.chance(0.15)) ? rng.below(slot) : slot;
  return {
    _id: w.id('menurecipes', i),
    menu: w.ref(rng, 'events', w.menuEvents[m]!),
    recipe: w.ref(rng, 'recipes', recipeOf(from)),
    day: String(slot % 7),
    period: String(Math.floor(slot / 7)),
    ...tail(rng, created, updated),
  };
};

const userquizzquestions: Build = (w, j, rng) => {
  const { created, updated } = stamps(w, 'userquizzquestions', j, rng);
  const u = w.userQuizzOfQuestion(j);
  const k = Math.floor(j / Math.max(1, w.count('userquizzs')));
  const q = w.questionOfQuizz(w.quizzOfUserQuizz(u), k, rng);
  const type = w.questionType(q);
  // Only the answer field matching the question's type is present (none when unanswered).
  let answer: Document = {};
  if (j < 16 || rng.chance(0.9)) {
    switch (type) {
      case 'QUIZZ_QUESTION_TYPE_BOOLEAN':
        answer = { boolean_answer: rng.chance(0.6) };
        break;
      case 'QUIZZ_QUESTION_TYPE_SCALE_1_10':
        answer = { numeric_answer: rng.int(1, 10) };
        break;
      case 'QUIZZ_QUESTION_TYPE_NUMERIC':
        answer = { numeric_answer: rng.chance(0.5) ? rng.int(40, 140) : Math.round(rng.next() * 1500) / 10 + 40 };
        break;
      case 'QUIZZ_QUESTION_TYPE_TEXT':
        answer = { text_answer: sentence(rng) };
        break;
      case 'QUIZZ_QUESTION_TYPE_DOCUMENT':
        answer = { document_answer: pictureUrl(rng, 'documents') };
        break;
      case 'QUIZZ_QUESTION_TYPE_ENUM_SINGLE':
        answer = { single_enum_answer: w.ref(rng, 'items', w.itemOfQuestion(q, rng)) };
        break;
      case 'QUIZZ_QUESTION_TYPE_ENUM_MULTIPLE':
        answer = { multiple_enum_answer: [w.ref(rng, 'items', w.itemOfQuestion(q, rng)), w.ref(rng, 'items', w.itemOfQuestion(q, rng))] };
        break;
      case 'QUIZZ_QUESTION_TYPE_TEXT_MULTIPLE':
        answer = {};
        break;
    }
  }
  return {
    _id: w.id('userquizzquestions', j),
    quizz_question: w.ref(rng, 'quizzquestions', q),
    ...answer,
    ...(rng.chance(0.15) ? { comment: rng.chance(0.2) ? '' : sentence(rng) } : {}),
    ...tail(rng, created, updated),
  };
};

const appointments: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'appointments', i, rng);
  const coaching = w.parentIndex(rng, 'coachings', w.position('appointments', i));
  const startMs = Math.floor((created + rng.int(1, 30) * DAY_MS) / (15 * MIN_MS)) * 15 * MIN_MS;
  const legacy = created < LEGACY_BEFORE;
  const validated = i === 0 || rng.chance(0.2) ? {} : { validated: rng.chance(0.7) };
  // `order` defaults to -1; documents older than the field hold null.
  const order = legacy ? null : rng.chance(0.6) ? -1 : rng.int(1, 12);
  return {
    _id: w.id('appointments', i),
    user: w.ref(rng, 'users', w.userOfCoaching(coaching)),
    coaching: w.ref(rng, 'coachings', coaching),
    appointment_type: w.refBefore(rng, 'appointmenttypes', 1),
    start_date: new Date(startMs),
    end_date: new Date(startMs + rng.pick([30, 45, 60]) * MIN_MS),
    ...validated,
    order,
    ...(rng.chance(0.3) ? { note: sentence(rng) } : {}),
    ...(rng.chance(0.5) ? { visio_url: `https://visio.example.org/${hex(rng, 12)}` } : {}),
    ...tail(rng, created, updated),
  };
};

const periods: Build = (w, p, rng) => {
  const { created, updated } = stamps(w, 'periods', p, rng);
  return {
    _id: w.id('periods', p),
    number_of_days: rng.pick([7, 14, 21, 28]),
    coaching: w.ref(rng, 'coachings', w.coachingOfPeriod(p)),
    order: rng.int(1, 6),
    status: rng.weighted([['active', 3], ['finished', 5], ['pending', 1]]),
    ...tail(rng, created, updated),
  };
};

const items: Build = (w, j, rng) => {
  const { created, updated } = stamps(w, 'items', j, rng);
  const forQuestion = j < w.questionItems;
  const admins = w.adminUsers;
  return {
    _id: w.id('items', j),
    text: forQuestion ? foodName(rng) : sentence(rng),
    ...(forQuestion
      ? { quizzQuestion: w.ref(rng, 'quizzquestions', w.questionOfItem(j)) }
      : { userQuizzQuestion: w.refBefore(rng, 'userquizzquestions', w.position('items', j)) }),
    ...(rng.chance(0.3) ? { description: sentence(rng) } : {}),
    ...(rng.chance(0.2) ? { picture: pictureUrl(rng, 'items') } : {}),
    ...(admins.length > 0 && rng.chance(0.25) ? { updated_by: w.id('users', admins[rng.below(admins.length)]!).toHexString() } : {}),
    order: rng.int(0, 9),
    ...tail(rng, created, updated),
  };
};

const days: Build = (w, i, rng) => {
  const { created, updated } = stamps(w, 'days', i, rng);
  const periodCount = Math.max(1, w.count('periods'));
  const p = i % periodCount;
  const k = Math.floor(i / periodCount);
  return {
    _id: w.id('days', i),
    period: w.ref(rng, 'periods', p),
    is_success: rng.chance(0.55),
    date: dayOf(w.createdAt('periods', p), k),
    ...(rng.chance(0.6) ? { userQuizz: w.refBefore(rng, 'userquizzs', 1) } : {}),
    // Some days have no content: an empty (present) array.
    contents: i === 0 || rng.chance(0.15) ? [] : w.refs(rng, 'contents', rng.int(1, 3)),
    main_logbooks: rng.chance(0.2) ? [] : w.refs(rng, 'userquizzs', rng.int(1, 2)),
    ...tail(rng, created, updated),
  };
};

const BUILDERS: Readonly<Record<Exclude<SampleCollection, 'coachinglogbooks'>, Build>> = {
  ingredients,
  appointmenttypes,
  companies,
  offers,
  categories,
  targets,
  recipes,
  contents,
  quizzs,
  quizzquestions,
  events,
  users,
  userquizzs,
  messages,
  coachings,
  menurecipes,
  userquizzquestions,
  appointments,
  periods,
  items,
  days,
};

/** The documents of one collection, in _id counter order. Lazy: nothing is kept once yielded. */
export function* documentsOf(w: World, c: SampleCollection): Generator<Document> {
  if (c === 'coachinglogbooks') {
    yield* coachinglogbooks(w);
    return;
  }
  const build = BUILDERS[c];
  const n = w.count(c);
  for (let i = 0; i < n; i++) yield build(w, i, w.rng(c, i));
}
