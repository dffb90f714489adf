// What "credential-shaped" means, in one place. Every string shown to a person (messages, hints,
// progress lines, manifests) passes through redactText(); `etl pack` scans every file it ships with
// findCredentials(…, 'scan'). A password must not leak because its string was malformed: the rules
// look at the shape of the text (user:password@host, password=…, PEM blocks, known key formats),
// not at whether it parses as a URL.

export type CredentialKind =
  | 'url_password' // a URL whose user part carries a password (user, colon, password, @), also malformed (postgres//…, postgresql:…), or lost its @ (scheme://user:password)
  | 'password_setting' // password=…, POSTGRES_PASSWORD=…, "token": "…", libpq keyword form
  | 'private_key' // -----BEGIN … PRIVATE KEY-----, PuTTY key files
  | 'aws_access_key' // AKIA… / ASIA…
  | 'api_token'; // well-known token formats (GitHub, Slack, Stripe, Google)

/** A credential found in a text: [start, end) is the secret itself (what redaction hides). */
export interface CredentialHit {
  readonly kind: CredentialKind;
  readonly start: number;
  readonly end: number;
}

/**
 * `display`: anything that might be a credential (over-redacting a message is harmless).
 * `scan`: what is very likely one (a false alarm stops `etl pack`): user:password@ only inside a
 * URL or after a database scheme, never in a bare `name:x@example.org`.
 */
export type FindMode = 'display' | 'scan';

const REDACTED = '***';

// Every rule below needs one of these in the text: an `@` (user:password@), a name ending like a
// secret (pass, secret, token, key) or a fixed token prefix. Most data holds none, and one search
// for them costs a small part of the dozen searches it spares (`etl pack` scans every staged byte).
const CREDENTIAL_HINT = /@|pass|secret|token|key|AKIA|ASIA|gh[pousr]_|xox[abposr]-|k_live_|AIza/i;

/** Every credential-shaped span of `text`, in order, not overlapping. */
export function findCredentials(text: string, mode: FindMode = 'display'): CredentialHit[] {
  const bare = mode === 'display' ? bareUserinfoHits(text) : [];
  if (!CREDENTIAL_HINT.test(text)) return bare;
  const hits: CredentialHit[] = [...bare, ...userinfoHits(text, mode), ...settingHits(text), ...patternHits(text)];
  hits.sort((a, b) => a.start - b.start || b.end - a.end);
  const merged: CredentialHit[] = [];
  for (const h of hits) {
    const last = merged[merged.length - 1];
    if (last && h.start < last.end) {
      if (h.end > last.end) merged[merged.length - 1] = { ...last, end: h.end };
      continue;
    }
    merged.push(h);
  }
  return merged;
}

/** The text with every known secret value and every credential-shaped span replaced by `***`. */
export function redactText(text: string, secrets: readonly string[] = []): string {
  // Known values first, longest first: a password holding a blank or an `@` is removed whole
  // before the shape rules below could cut it in two.
  let known = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret.length >= 3 && !isPlainWord(secret)) known = known.split(secret).join(REDACTED);
  }
  let out = '';
  let at = 0;
  for (const h of findCredentials(known, 'display')) {
    out += known.slice(at, h.start) + REDACTED;
    at = h.end;
  }
  return out + known.slice(at);
}

/**
 * A short password made only of letters or only of digits (postgres, connect, 127) is also a word or
 * a number of ordinary text: replacing it everywhere would mangle messages (`***ql://`, `cannot *** to`)
 * and tell the reader which word it is. The shape rules still hide it where it stands as a password
 * (user:***@, password=***), the only places a message or a driver puts one. A longer one is rarely
 * ordinary text, and is hidden wherever it appears (a password pasted into the wrong setting).
 */
function isPlainWord(secret: string): boolean {
  return secret.length <= PLAIN_WORD_MAX && /^(?:\p{L}+|\d+)$/u.test(secret);
}

const PLAIN_WORD_MAX = 8;

/** A connection string as it may be shown: its password (whatever the string's form) is `***`. */
export function redactUrl(url: string): string {
  return redactText(url);
}

function isRedacted(value: string): boolean {
  return /^(\*+|%2A(%2A)*|<[^<>\s]*>|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*)$/i.test(value.replace(/^['"]|['"]$/g, ''));
}

// ── user:password@host ───────────────────────────────────────────────────────────────────────────

const SCHEME = /[A-Za-z][A-Za-z0-9+.-]*:\/\//;
// Schemes whose user:password@ is a credential even when the `//` is missing or broken.
const SERVICE_SCHEME = /(?:^|[^A-Za-z0-9+.-])(postgres(?:ql)?|mongodb(?:\+srv)?|mysql|mariadb|redis|rediss|amqps?|mssql|sqlserver|oracle|s?ftp|ssh|smtp|https?|wss?)[:/]/i;

/**
 * Within each run of non-blank characters holding an `@`: the password is what lies between the
 * first `:` after the user name and the last `@` (a password may hold `@`, `:` or `/`; a URL parser
 * would cut it elsewhere, a person reading it would not). Tokens are found from each `@` outwards,
 * so a long line costs one pass (a regex like \S*@\S* would be quadratic on it).
 */
function userinfoHits(text: string, mode: FindMode): CredentialHit[] {
  const hits: CredentialHit[] = [];
  // Scan mode reads JSON and CSV, where quotes and brackets end a value; display mode must not
  // stop at them, since a password may contain them.
  const isDelimiter = mode === 'scan' ? (c: string) => /[\s"'`<>{}()[\],\\]/.test(c) : (c: string) => /\s/.test(c);
  for (let at = text.indexOf('@'); at !== -1; ) {
    let start = at;
    while (start > 0 && !isDelimiter(text[start - 1]!)) start -= 1;
    let end = at + 1;
    while (end < text.length && !isDelimiter(text[end]!)) end += 1;
    const token = text.slice(start, end);
    const hit = passwordSpan(token.slice(0, token.lastIndexOf('@')), mode);
    if (hit) hits.push({ kind: 'url_password', start: start + hit[0], end: start + hit[1] });
    at = text.indexOf('@', end);
  }
  return hits;
}

/** [start, end) of the password in `head` (a token up to its last `@`), or null. */
function passwordSpan(head: string, mode: FindMode): [number, number] | null {
  const scheme = SCHEME.exec(head);
  const schemeEnd = scheme ? scheme.index + scheme[0].length : 0;
  let colon = scheme ? head.indexOf(':', schemeEnd) : -1;
  if (colon === -1) {
    const first = head.indexOf(':');
    colon = scheme && first === schemeEnd - 3 ? -1 : first;
  }
  if (colon === -1 || colon + 1 >= head.length) return null;
  if (isRedacted(head.slice(colon + 1))) return null;
  if (mode === 'scan') {
    if (!scheme && !SERVICE_SCHEME.test(head)) return null;
    // A `/` after the host means the `@` is in the path (a segment such as `/@name`): no user info.
    if (scheme && head.slice(schemeEnd).includes('/')) return null;
  }
  return [colon + 1, head.length];
}

/**
 * `scheme://user:rest` with no `@`: `rest` is a port (or a MongoDB host list) or a password whose
 * `@host` was lost, e.g. to a `#` that .env reads as the start of a comment (a password holding
 * `#`, unquoted, cuts the URL there: user, colon, the password's first part, nothing after). Display
 * mode only, and to the end of the token: over-redacting a message is harmless, a password is not.
 */
function bareUserinfoHits(text: string): CredentialHit[] {
  const hits: CredentialHit[] = [];
  for (let at = text.indexOf('://'); at !== -1; at = text.indexOf('://', at + 3)) {
    const start = at + 3;
    let end = start;
    while (end < text.length && !/\s/.test(text[end]!)) end += 1;
    const token = text.slice(start, end);
    if (token.includes('@')) continue; // user:password@host: userinfoHits
    const authority = token.split(/[/?#]/, 1)[0]!;
    const colon = authority.indexOf(':');
    if (colon <= 0 || authority.startsWith('[')) continue;
    // The punctuation of the sentence a port ends ("tried mongodb://localhost:27017: set …") is not part of it.
    const port = authority.slice(colon + 1).replace(/[.,:;]+$/, '');
    // The quote or bracket a message closes the string with stays.
    const rest = token.slice(colon + 1).replace(/["'`)\]]+$/, '');
    if (PORTS.test(port) || isRedacted(port) || rest === '') continue;
    hits.push({ kind: 'url_password', start: start + colon + 1, end: start + colon + 1 + rest.length });
  }
  return hits;
}

/** A port, or MongoDB's `27017,host2:27017,…`: what may follow `host:` in a URL. */
const PORTS = /^\d{1,5}(?:,[^,:]+(?::\d{1,5})?)*$/;

// ── password=…, "password": "…" ──────────────────────────────────────────────────────────────────

// A setting whose name ends like a secret: password, POSTGRES_PASSWORD, passphrase, api_key, token…;
// and a MongoDB URL's authMechanismProperties, whose pairs may hold AWS_SESSION_TOKEN:<token>.
const SECRET_NAME = String.raw`(?:[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|secret|secret_?key|secret_access_key|access_?token|auth_?token|refresh_?token|api_?key|private_?key|client_?secret|token)|(?:[A-Za-z0-9_.-]*?[_.-])?pass|authMechanismProperties)`;
const QUOTED = String.raw`'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"`;
// name=value (libpq keyword form, .env files, query strings): the value is quoted or runs to a blank.
const ASSIGNMENT = new RegExp(String.raw`(?<![A-Za-z0-9_.-])(["']?)(${SECRET_NAME})\1[ \t]*=[ \t]*(${QUOTED}|\S+)`, 'gi');
// "name": "value" (JSON, YAML with a quoted value) and YAML's `name: value` at the start of a line.
const COLON_QUOTED = new RegExp(String.raw`(?<![A-Za-z0-9_.-])(["']?)(${SECRET_NAME})\1[ \t]*:[ \t]*(${QUOTED})`, 'gi');
const YAML_LINE = new RegExp(String.raw`^[ \t]*(?:-[ \t]+)?(${SECRET_NAME})[ \t]*:[ \t]+([^\s'"#][^\r\n#]*?)[ \t]*$`, 'gim');

function settingHits(text: string): CredentialHit[] {
  const hits: CredentialHit[] = [];
  const add = (m: RegExpMatchArray, value: string) => {
    const start = m.index! + m[0].length - value.length;
    const bare = value.replace(/^(['"])([\s\S]*)\1$/, '$2');
    // A value hidden already, with the punctuation of the sentence it ends (`password=***: connect …`).
    if (bare === '' || isRedacted(bare.replace(/[:,;.)]+$/, ''))) return;
    hits.push({ kind: 'password_setting', start, end: start + value.length });
  };
  for (const m of text.matchAll(ASSIGNMENT)) add(m, m[3]!);
  for (const m of text.matchAll(COLON_QUOTED)) add(m, m[3]!);
  for (const m of text.matchAll(YAML_LINE)) add(m, m[2]!);
  return hits;
}

// ── fixed shapes ─────────────────────────────────────────────────────────────────────────────────

const PATTERNS: readonly (readonly [CredentialKind, RegExp])[] = [
  // The whole block when its end is in the text, else from the BEGIN line to the end of the text.
  ['private_key', /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*$)/g],
  ['private_key', /PuTTY-User-Key-File-\d+:[^\r\n]*/g],
  ['aws_access_key', /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g],
  ['api_token', /\bgh[pousr]_[A-Za-z0-9]{36,}\b/g],
  ['api_token', /\bxox[abposr]-[A-Za-z0-9-]{10,}/g],
  ['api_token', /\b[sr]k_live_[A-Za-z0-9]{16,}\b/g],
  ['api_token', /\bAIza[0-9A-Za-z_-]{35}\b/g],
];

function patternHits(text: string): CredentialHit[] {
  const hits: CredentialHit[] = [];
  for (const [kind, re] of PATTERNS) {
    for (const m of text.matchAll(re)) hits.push({ kind, start: m.index, end: m.index + m[0].length });
  }
  return hits;
}

/** Words for a finding, e.g. in `etl pack`'s refusal. */
export function describeCredential(kind: CredentialKind): string {
  switch (kind) {
    case 'url_password':
      return 'a connection string with a password (user:***@host)';
    case 'password_setting':
      return 'a password or secret setting (name=***)';
    case 'private_key':
      return 'a private key';
    case 'aws_access_key':
      return 'an AWS access key id';
    case 'api_token':
      return 'an API token';
  }
}

/**
 * A connection string as an error quotes it: without its secrets, or not at all when it has no form
 * of one (no `://`, `@` or `=`). A lone word there may be the password itself, pasted into the wrong
 * variable, and no rule could tell it from a host name. `hidden`: parts the error did not show
 * either (a value quotedSettingValue kept back).
 */
export function quotedConnectionString(value: string, hidden: readonly string[] = []): string {
  if (!/:\/\/|@|=/.test(value)) return notShown(value, ' of no known form');
  return `"${redactText(value, [...connectionStringSecrets(value), ...hidden])}"`;
}

/**
 * What a setting takes: its values (a choice: PGSSLMODE, TRANSFER_SOURCE), or the pattern of its
 * values (a port, a date, a path).
 */
export type SettingShape = readonly string[] | RegExp;

/**
 * A setting's value as an error quotes it (`got …`): shown, in quotes, when it has the shape the
 * setting takes (a typo is worth seeing); otherwise only its length. A value of another shape may be
 * a password that landed in the wrong setting (a line of .env shifted, a value pasted in the wrong
 * variable), and no rule could tell a password from an ordinary word. Every setting whose value an
 * error quotes goes through here.
 */
export function quotedSettingValue(value: string, shape: SettingShape): string {
  return settingValueShown(value, shape) ? `"${value}"` : notShown(value);
}

/** Whether quotedSettingValue shows `value`. */
export function settingValueShown(value: string, shape: SettingShape): boolean {
  if (redactText(value) !== value) return false;
  // A word of a few letters (always, yes, true) is a wrong word, not a password's shape.
  if (/^\p{L}{1,8}$/u.test(value)) return true;
  if (shape instanceof RegExp) return shape.test(value);
  return shape.some((choice) => editDistance(value.toLowerCase(), choice.toLowerCase()) <= TYPO_EDITS);
}

// Shapes several settings share. A port as a person may mistype it (5432x, :5432, 70000).
export const PORT_SHAPE = /^\D?\d+\D?$/;
// A number of seconds as a person may mistype it (10s, 1.5, -3).
export const SECONDS_SHAPE = /^[-+]?[\d.,]+\s*[A-Za-z]{0,3}$/;
// A path (PG_BIN_DIR, REMOTE_SERVER_KEY_FILE) as people write one: from /, ~/, ./ or ../; a bare
// name may be anything.
export const PATH_SHAPE = /^(?:~|\.{1,2})?\//;
// A typo of a choice: a letter or two missing, extra, swapped or wrong (remot, verify_full, requird).
const TYPO_EDITS = 2;

function notShown(value: string, form = ''): string {
  return `${value.length} characters${form}, not shown: it may be a password`;
}

/** Levenshtein distance: the fewest inserts, deletes and replacements turning `a` into `b`. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const next = [i];
    for (let j = 1; j <= b.length; j += 1) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[b.length]!;
}

/**
 * The secret values of one connection string taken whole: blanks are not token boundaries here, so
 * a password holding a blank between the user's `:` and the `@` is one secret, blank included
 * (redactText, cutting at blanks, could not know).
 */
export function connectionStringSecrets(value: string): string[] {
  const masked = value.replace(/\s/g, '\u0001');
  const out = new Set<string>();
  for (const h of [...userinfoHits(masked, 'display'), ...bareUserinfoHits(masked), ...settingHits(value)]) {
    const raw = value.slice(h.start, h.end);
    if (raw.length === 0 || isRedacted(raw)) continue;
    out.add(raw);
    // A password whose @host was lost: a URL parser quotes only its part before a / ? or #.
    if (h.kind === 'url_password' && !value.includes('@')) out.add(raw.split(/[/?#]/, 1)[0]!);
    // A quoted keyword value: its text as the driver sees it is a secret too.
    const m = /^'((?:\\.|[^'\\])*)'$/.exec(raw) ?? /^"((?:\\.|[^"\\])*)"$/.exec(raw);
    if (m) out.add(m[1]!.replace(/\\(.)/g, '$1'));
  }
  for (const secret of querySecrets(value)) out.add(secret);
  return [...out];
}

const WHOLE_SECRET_NAME = new RegExp(`^${SECRET_NAME}$`, 'i');

/**
 * The values of a URL's parameters named like a secret once percent-decoded (`?pass%77ord=…`): libpq
 * decodes a parameter's name, the shape rules read it as written. Both the value as written and
 * decoded are secrets.
 */
function querySecrets(value: string): string[] {
  const out: string[] = [];
  for (const m of value.matchAll(/[?&]([^=&#\s]+)=([^&#\s]+)/g)) {
    if (!WHOLE_SECRET_NAME.test(percentDecoded(m[1]!))) continue;
    out.push(m[2]!, percentDecoded(m[2]!));
  }
  return out.filter((s) => !isRedacted(s));
}

/** `text` with its percent-escapes decoded, or as is when they are not valid. */
export function percentDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
