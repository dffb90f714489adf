// How many documents each collection gets for a given scale: the proportions of a production
// Wappizy database (coachinglogbooks the largest, then userquizzquestions, days, users…; reference
// collections stay small). The counts always add up to the scale exactly.

/** Every collection the pipeline reads, in the order the sample writes them. */
export const SAMPLE_COLLECTIONS = [
  'ingredients',
  'appointmenttypes',
  'companies',
  'offers',
  'categories',
  'targets',
  'recipes',
  'contents',
  'quizzs',
  'quizzquestions',
  'events',
  'users',
  'userquizzs',
  'messages',
  'coachings',
  'coachinglogbooks',
  'menurecipes',
  'userquizzquestions',
  'appointments',
  'periods',
  'items',
  'days',
] as const;

export type SampleCollection = (typeof SAMPLE_COLLECTIONS)[number];

export type SamplePlan = Readonly<Record<SampleCollection, number>>;

/** Share of the total, and the floor that keeps every variation present in a small sample. */
const SHARES: Readonly<Record<Exclude<SampleCollection, 'coachinglogbooks'>, readonly [share: number, min: number]>> = {
  ingredients: [0.002, 3],
  appointmenttypes: [0.00001, 4],
  companies: [0.0004, 3],
  offers: [0.00002, 4],
  categories: [0.00003, 3],
  targets: [0.00005, 8],
  recipes: [0.003, 4],
  contents: [0.002, 6],
  quizzs: [0.0002, 6],
  quizzquestions: [0.001, 8],
  events: [0.002, 8],
  users: [0.08, 8],
  userquizzs: [0.04, 1],
  messages: [0.035, 1],
  coachings: [0.02, 5],
  menurecipes: [0.008, 1],
  userquizzquestions: [0.2, 1],
  appointments: [0.03, 1],
  periods: [0.03, 1],
  items: [0.05, 1],
  days: [0.14, 1],
};

/** Below this the floors do not fit: every collection then gets at least one document. */
const FLOORS_FROM = 500;
export const MIN_SCALE = SAMPLE_COLLECTIONS.length;

/**
 * A billion documents (some 300 GB of BSON). The world of a sample is built before its first byte is
 * written, in time and memory that grow with the scale (ten seconds here), deaf to Ctrl-C meanwhile.
 */
export const MAX_SCALE = 1_000_000_000;
/** A menu has 7 days × 2 periods, one menurecipe each at most. */
export const MENU_SLOTS = 14;

/**
 * `menus` is the number of events that are menus, known only once events are typed; the plan caps
 * menurecipes to what the menus can hold and gives the rest to coachinglogbooks (the remainder).
 */
export function planSample(scale: number, menusOf: (events: number) => number): SamplePlan {
  if (!Number.isInteger(scale) || scale < MIN_SCALE || scale > MAX_SCALE) {
    throw new RangeError(`scale must be an integer from ${MIN_SCALE} (one document per collection) to ${MAX_SCALE}, got ${scale}`);
  }
  const counts = {} as Record<SampleCollection, number>;
  let used = 0;
  for (const [name, [share, min]] of Object.entries(SHARES) as [keyof typeof SHARES, readonly [number, number]][]) {
    const n = Math.max(scale >= FLOORS_FROM ? min : 1, Math.round(scale * share));
    counts[name] = n;
    used += n;
  }
  const menus = menusOf(counts.events);
  if (menus > 0) counts.menurecipes = Math.min(counts.menurecipes, menus * MENU_SLOTS);
  else {
    used -= counts.menurecipes;
    counts.menurecipes = 0;
  }
  used = Object.values(counts).reduce((a, b) => a + b, 0);
  // The floors can outgrow a tiny scale: take back from the largest collections, never below one.
  while (used > scale - 1) {
    const largest = (Object.keys(counts) as SampleCollection[]).reduce((a, b) => (counts[b] > counts[a] ? b : a));
    if (counts[largest] <= 1) break;
    counts[largest] -= 1;
    used -= 1;
  }
  counts.coachinglogbooks = scale - used;
  const ordered = {} as Record<SampleCollection, number>;
  for (const name of SAMPLE_COLLECTIONS) ordered[name] = counts[name];
  return Object.freeze(ordered);
}
