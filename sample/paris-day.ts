// Day-only dates as the Wappizy app stores them: local midnight in Europe/Paris, so 7 March 2024 is
// 2024-03-06T23:00:00Z and 7 July 2024 is 2024-07-06T22:00:00Z. The offset comes from the real time
// zone rules (Intl), not from a hand-written DST rule: France had no summer time before 1976 and
// ended it in September until 1995, and birthdays reach back that far.

const DAY_MS = 86_400_000;

const wallClock = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Europe/Paris',
  hourCycle: 'h23',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

// Paris changes offset only on whole UTC hours, so one lookup per hour is exact. Bounded by the
// hours the sample touches (Intl is slow: this keeps a million documents fast).
const offsetCache = new Map<number, number>();

/** Europe/Paris offset from UTC at an instant, in milliseconds (3_600_000 or 7_200_000). */
function parisOffsetAt(instantMs: number): number {
  const hour = Math.floor(instantMs / 3_600_000);
  let offset = offsetCache.get(hour);
  if (offset === undefined) {
    offset = computeOffset(hour * 3_600_000);
    offsetCache.set(hour, offset);
  }
  return offset;
}

function computeOffset(instantMs: number): number {
  const parts: Record<string, number> = {};
  for (const p of wallClock.formatToParts(new Date(instantMs))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const wall = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
  return wall - Math.floor(instantMs / 1000) * 1000;
}

// Bounded by the number of distinct days the sample uses (a few tens of thousands at most).
const midnightCache = new Map<number, number>();

/** The UTC instant of midnight in Paris on the calendar day `dayNumber` (days since 1970-01-01). */
export function parisMidnight(dayNumber: number): Date {
  let ms = midnightCache.get(dayNumber);
  if (ms === undefined) {
    const utcMidnight = dayNumber * DAY_MS;
    const guess = utcMidnight - parisOffsetAt(utcMidnight - 3_600_000);
    ms = utcMidnight - parisOffsetAt(guess);
    midnightCache.set(dayNumber, ms);
  }
  return new Date(ms);
}

/** The Paris calendar day (days since 1970-01-01) of an instant. */
export function parisDayNumber(instantMs: number): number {
  return Math.floor((instantMs + parisOffsetAt(instantMs)) / DAY_MS);
}

/** `YYYY-MM-DD` of a day number, for tests and messages. */
export function formatDayNumber(dayNumber: number): string {
  return new Date(dayNumber * DAY_MS).toISOString().slice(0, 10);
}
