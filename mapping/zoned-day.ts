// The calendar day of an instant in the business time zone (settings.timezone).
//
// Why a zone and not UTC: the app stores day-only dates as local midnight, so 7 March 2024 is stored
// as 2024-03-06T23:00:00Z (winter, UTC+1) and 15 July 2024 as 2024-07-14T22:00:00Z (summer, UTC+2);
// the UTC day would be one day early. The offset comes from the zone rules (Intl), never from a
// hand-written DST rule: France had no summer time before 1976, and Paris ran on local mean time
// (+00:09:21) before 1911.
//
// Intl is slow (several µs a call) and birthdays spread over decades, so offsets are cached per UTC
// day: a day whose offset at its first and last millisecond agree holds no transition (zones change
// at most twice a year, never back and forth within a day) and is cached whole. A day holding a
// transition is cached per hour the same way, and an hour holding one is computed per instant. The
// caches are bounded.

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

/** The zone's offset at an instant (wall-clock time minus UTC time, in ms, to the second), from Intl. */
function offsetAt(wallClock: Intl.DateTimeFormat, instantMs: number): number {
  let year = 0;
  let month = 0;
  let day = 0;
  let hour = 0;
  let minute = 0;
  let second = 0;
  let bc = false;
  for (const p of wallClock.formatToParts(instantMs)) {
    switch (p.type) {
      case 'era':
        bc = p.value.startsWith('B');
        break;
      case 'year':
        year = Number(p.value);
        break;
      case 'month':
        month = Number(p.value);
        break;
      case 'day':
        day = Number(p.value);
        break;
      case 'hour':
        hour = Number(p.value);
        break;
      case 'minute':
        minute = Number(p.value);
        break;
      case 'second':
        second = Number(p.value);
        break;
      default:
        break;
    }
  }
  const wall = new Date(0);
  wall.setUTCFullYear(bc ? 1 - year : year, month - 1, day);
  wall.setUTCHours(hour, minute, second, 0);
  return wall.getTime() - Math.floor(instantMs / 1000) * 1000;
}

class ZonedDays implements DayFormatter {
  private readonly wallClock: Intl.DateTimeFormat;
  private readonly dayOffsets = new Map<number, number>();
  private readonly hourOffsets = new Map<number, number>();
  private readonly dayTexts = new Map<number, string>();

  constructor(timeZone: string) {
    this.wallClock = new Intl.DateTimeFormat('en-GB', {
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
      const start = offsetAt(this.wallClock, dayNumber * DAY_MS);
      const end = offsetAt(this.wallClock, dayNumber * DAY_MS + DAY_MS - 1);
      known = start === end ? start : Number.NaN;
      if (this.dayOffsets.size >= CACHE_LIMIT) this.dayOffsets.clear();
      this.dayOffsets.set(dayNumber, known);
    }
    return Number.isNaN(known) ? this.hourOffset(instantMs) : known;
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
