// A date or instant as a user writes it: `--since`, GLOBAL_DATE_THRESHOLD and pipeline.yaml's
// date_threshold read it here, and only here. JavaScript's Date is lenient in two ways a data tool
// must not be: it rolls a day the calendar lacks into the next month (2024-02-30 is March 1st), and
// reads a time without a zone in this machine's zone. So the text must be ISO 8601, a date is midnight
// UTC, a time without a zone is UTC, and the day must exist.

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** Text shaped like a date or instant, valid or not (2024-13-01, 2024/01/31): what an error may quote. */
export const INSTANT_SHAPE = /^(?=.*\d)[\d\s\-/:.,+TZ]+$/i;

/** The instant `text` names, or null when it is not an ISO 8601 date or instant of the calendar. */
export function parseInstant(text: string): Date | null {
  const m = ISO.exec(text.trim());
  if (!m) return null;
  const [, year, month, day, hour = '00', minute = '00', second = '00', fraction = '', zone = 'Z'] = m;
  const calendarDay = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));
  if (calendarDay.getUTCMonth() !== Number(month) - 1 || calendarDay.getUTCDate() !== Number(day)) return null;
  if (Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) return null;
  const at = new Date(`${year}-${month}-${day}T${hour}:${minute}:${second}${fraction}${zone}`);
  return Number.isNaN(at.getTime()) ? null : at;
}
