// The calendar day of an instant in the business time zone (settings.timezone).
//
// Why a zone and not UTC: the app stores day-only dates as local midnight, so 7 March 2024 is stored
// as 2024-03-06T23:00:00Z (winter, UTC+1) and 15 July 2024 as 2024-07-14T22:00:00Z (summer, UTC+2);
// the UTC day would be one day early. The offset comes from the zone rules (Intl), never from a
// hand-written DST rule: France had no summer time before 1976, and Paris ran on local mean time
// (+00:09:21) before 1911.
//
// Intl is slow (several µs a call) and birthdays spread over decades, so offsets are cached per UTC
// day: a day whose offset at its first millisecond and at the next day's first agree holds no
// transition (zones change at most twice a year, never back and forth within a day) and is cached
// whole. A day holding a transition is cached per hour the same way, and an hour holding one is
// computed per instant. The caches are bounded.

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const CACHE_LIMIT = 200_000;

export interface DayFormatter {
  /** `YYYY-MM-DD` of the instant in the zone, or null when the day is outside years 1..9999. */
  day(instantMs: number): string | null;
}

export function dayFormatter(timeZone: string): DayFormatter {
  return new ZonedDays(timeZone);
}

/** Wall-clock fields of an instant in the zone. */
interface WallClock {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
}

/** The fields from formatToParts (about three times slower than format(), but no text to parse). */
function partsOf(format: Intl.DateTimeFormat, instantMs: number): WallClock {
  const f = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  let bc = false;
  for (const p of format.formatToParts(instantMs)) {
    if (p.type === 'era') bc = p.value.startsWith('B');
    else if (p.type in f) f[p.type as keyof typeof f] = Number(p.value);
  }
  return { ...f, year: bc ? 1 - f.year : f.year };
}

/** en-GB's `format()` text, `07/03/2024 AD, 00:00:00`: what formatToParts splits, as one string. */
const EN_GB_TEXT = /^(\d+)\/(\d+)\/(\d+) (AD|BC), (\d+):(\d+):(\d+)$/;

/** The fields from format()'s text, or null when the text is not in the expected shape. */
function textFieldsOf(format: Intl.DateTimeFormat, instantMs: number): WallClock | null {
  const m = EN_GB_TEXT.exec(format.format(instantMs));
  if (!m) return null;
  const year = Number(m[3]);
  return { year: m[4] === 'BC' ? 1 - year : year, day: Number(m[1]), month: Number(m[2]), hour: Number(m[5]), minute: Number(m[6]), second: Number(m[7]) };
}

/**
 * The zone's wall clock at an instant. format() and a regex cost a third of formatToParts, which
 * was most of the stage's date work (birthdays spread over decades: a cache miss per day); if this
 * ICU writes another shape (checked on a known instant when the formatter is made), formatToParts.
 */
function wallClockReader(format: Intl.DateTimeFormat): (instantMs: number) => WallClock {
  const probes = [Date.UTC(2024, 2, 6, 23, 4, 5), Date.UTC(-5, 10, 28, 1, 2, 3)];
  const agree = probes.every((ms) => {
    const fromText = textFieldsOf(format, ms);
    const fromParts = partsOf(format, ms);
    return fromText !== null && (Object.keys(fromParts) as (keyof WallClock)[]).every((k) => fromText[k] === fromParts[k]);
  });
  return agree ? (ms) => textFieldsOf(format, ms) ?? partsOf(format, ms) : (ms) => partsOf(format, ms);
}

/** The zone's offset at an instant (wall-clock time minus UTC time, in ms, to the second). */
function offsetAt(wallClock: (instantMs: number) => WallClock, instantMs: number): number {
  const w = wallClock(instantMs);
  const wall = new Date(0);
  wall.setUTCFullYear(w.year, w.month - 1, w.day);
  wall.setUTCHours(w.hour, w.minute, w.second, 0);
  return wall.getTime() - Math.floor(instantMs / 1000) * 1000;
}

class ZonedDays implements DayFormatter {
  private readonly wallClock: (instantMs: number) => WallClock;
  private readonly dayOffsets = new Map<number, number>();
  private readonly startOffsets = new Map<number, number>();
  private readonly hourOffsets = new Map<number, number>();
  private readonly dayTexts = new Map<number, string>();

  constructor(timeZone: string) {
    const format = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    this.wallClock = wallClockReader(format);
  }

  day(instantMs: number): string | null {
    const dayNumber = Math.floor((instantMs + this.offset(instantMs)) / DAY_MS);
    let text = this.dayTexts.get(dayNumber);
    if (text === undefined) {
      const iso = new Date(dayNumber * DAY_MS).toISOString();
      // Years 1..9999 only: 4-digit years, which PostgreSQL reads back unchanged.
      if (iso.length !== 24 || iso.startsWith('0000')) return null;
      text = iso.slice(0, 10);
      if (this.dayTexts.size >= CACHE_LIMIT) this.dayTexts.clear();
      this.dayTexts.set(dayNumber, text);
    }
    return text;
  }

  private offset(instantMs: number): number {
    const dayNumber = Math.floor(instantMs / DAY_MS);
    let known = this.dayOffsets.get(dayNumber);
    if (known === undefined) {
      // The next day's first millisecond, not this day's last: a day shares it with its neighbour,
      // so days in a row (birthdays over decades) cost one zone lookup each, not two. A transition
      // at that very instant only sends this day to the per-hour path, which finds none.
      const start = this.startOffset(dayNumber);
      const end = this.startOffset(dayNumber + 1);
      known = start === end ? start : Number.NaN;
      if (this.dayOffsets.size >= CACHE_LIMIT) this.dayOffsets.clear();
      this.dayOffsets.set(dayNumber, known);
    }
    return Number.isNaN(known) ? this.hourOffset(instantMs) : known;
  }

  /** The offset at a UTC day's first millisecond. */
  private startOffset(dayNumber: number): number {
    let offset = this.startOffsets.get(dayNumber);
    if (offset === undefined) {
      offset = offsetAt(this.wallClock, dayNumber * DAY_MS);
      if (this.startOffsets.size >= CACHE_LIMIT) this.startOffsets.clear();
      this.startOffsets.set(dayNumber, offset);
    }
    return offset;
  }

  private hourOffset(instantMs: number): number {
    const hour = Math.floor(instantMs / HOUR_MS);
    const cached = this.hourOffsets.get(hour);
    if (cached !== undefined) return Number.isNaN(cached) ? offsetAt(this.wallClock, instantMs) : cached;
    const start = offsetAt(this.wallClock, hour * HOUR_MS);
    const end = offsetAt(this.wallClock, hour * HOUR_MS + HOUR_MS - 1);
    if (this.hourOffsets.size >= CACHE_LIMIT) this.hourOffsets.clear();
    // NaN marks an hour holding a transition: never cached as one offset.
    this.hourOffsets.set(hour, start === end ? start : Number.NaN);
    return start === end ? start : offsetAt(this.wallClock, instantMs);
  }
}
