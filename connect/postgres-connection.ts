// PostgreSQL connection strings, in both forms libpq accepts: the URL
// (postgresql://<user>@<host>:5432/<db>?sslmode=require, a password after the user and a colon) and
// the keyword form (host=db.example port=5432 dbname=smartdiet user=etl, a password setting beside
// them, in single quotes when it holds blanks). A string that is
// neither is a ConfigError naming where it came from and what is wrong, showing it without its
// password whatever its shape.
import { ConfigError } from '../errors/etl-error.ts';
import { connectionStringSecrets, PORT_SHAPE, quotedConnectionString, SECONDS_SHAPE, quotedSettingValue, settingValueShown, type SettingShape } from '../errors/redact.ts';

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** What a connection string says; absent parts are filled by the caller (PG* variables, defaults). */
export interface PostgresParts {
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  password?: string;
  sslmode?: SslMode;
  applicationName?: string;
  connectTimeoutSeconds?: number;
  options?: string;
  /** Files named by sslrootcert / sslcert / sslkey. */
  sslFiles?: { rootcert?: string; cert?: string; key?: string };
}

const URL_FORM = /^postgres(?:ql)?:\/\//i;
const KEYWORD_FORM = /^\s*[A-Za-z_]+\s*=/;
// Keyword (and URL query) names etl understands, with the part each fills.
const KEYWORDS = ['host', 'hostaddr', 'port', 'dbname', 'user', 'password', 'sslmode', 'application_name', 'connect_timeout', 'options', 'sslrootcert', 'sslcert', 'sslkey'] as const;
const HINT = 'write it as postgresql://<user>@<host>:5432/<database>, the password after the user and a colon (percent-encode its special characters, e.g. @ as %40), or as keywords: host=<host> port=5432 dbname=<database> user=<user> and a password setting';

/** Parses `value`, which came from `source` (e.g. `DATABASE_URL`, `--database-url`, `DATABASE_URL in /x/.env line 3`). */
export function parsePostgresConnectionString(value: string, source: string): PostgresParts {
  // The keyword form is not shown at all: where a value ends is the very thing that may be wrong
  // (an unquoted password holding a blank), so no rule could be sure to hide all of a password.
  // `hidden`: a part's value the message did not show, hidden from the string as well.
  const fail = (what: string, show = true, hidden?: string): never => {
    const shown = show ? ` (got ${quotedConnectionString(value, hidden === undefined ? [] : [hidden])})` : '';
    throw new ConfigError(`${source} is not a valid PostgreSQL connection string: ${what}${shown}`, [], {
      hint: HINT,
      context: { variable: source },
    });
  };
  if (URL_FORM.test(value)) return parseUrlForm(value, (what, hidden) => fail(what, true, hidden));
  if (KEYWORD_FORM.test(value)) return parseKeywordForm(value, (what) => fail(what, false));
  if (/^postgres(?:ql)?[:/]/i.test(value)) return fail('the scheme must be followed by "://"');
  return fail('expected postgresql://… or the keyword form host=… dbname=…');
}

/** Refuses the string: `what` is wrong; `hidden`, a value `what` did not show. */
type Fail = (what: string, hidden?: string) => never;

function parseUrlForm(value: string, fail: Fail): PostgresParts {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // The host part follows the last `@` (a raw password may hold `/` or `@`).
    const rest = value.slice(value.indexOf('://') + 3);
    const hostPart = rest.slice(rest.lastIndexOf('@') + 1).split(/[/?#]/)[0]!;
    const port = /^(?:\[[^\]]*\]|[^:]*):(.*)$/.exec(hostPart)?.[1];
    if (port !== undefined && !isPort(port)) {
      // Echoed only when it cannot be a piece of a password.
      const shown = settingValueShown(port, PORT_SHAPE) && !connectionStringSecrets(value).some((s) => s.includes(port));
      fail(shown ? `the port "${port}" is not a number from 1 to 65535` : 'the port is not a number from 1 to 65535', shown ? undefined : port);
    }
    return fail('it is not a valid URL (special characters of the user name or password must be percent-encoded)');
  }
  const decode = (text: string, what: string): string => {
    try {
      return decodeURIComponent(text);
    } catch {
      return fail(`the ${what} is not valid percent-encoding`);
    }
  };
  const parts: PostgresParts = {};
  if (url.hostname) parts.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (url.port) parts.port = Number(url.port);
  if (url.username) parts.user = decode(url.username, 'user name');
  if (url.password) parts.password = decode(url.password, 'password');
  const database = url.pathname.replace(/^\//, '');
  if (database) parts.database = decode(database, 'database name');
  for (const [key, raw] of url.searchParams) {
    if (key === 'ssl') {
      if (!/^(true|1|false|0)$/.test(raw)) failValue(fail, 'ssl must be true or false', raw, ['true', 'false']);
      parts.sslmode = raw === 'true' || raw === '1' ? 'verify-full' : 'disable';
    } else setKeyword(parts, key, raw, fail);
  }
  return parts;
}

/** libpq's keyword form: key = value pairs; a value may be single-quoted, backslash escapes \' and \\. */
function parseKeywordForm(value: string, fail: Fail): PostgresParts {
  const parts: PostgresParts = {};
  let i = 0;
  const blank = () => {
    while (i < value.length && /\s/.test(value[i]!)) i += 1;
  };
  for (blank(); i < value.length; blank()) {
    const key = /^[^=\s]+/.exec(value.slice(i))?.[0] ?? '';
    i += key.length;
    blank();
    if (value[i] !== '=') fail('expected key=value settings separated by blanks (a value that holds blanks or quotes goes in single quotes)');
    i += 1;
    blank();
    let raw = '';
    const quoted = value[i] === "'";
    if (quoted) i += 1;
    for (; i < value.length; i += 1) {
      const c = value[i]!;
      if (quoted ? c === "'" : /\s/.test(c)) break;
      if (c === '\\' && i + 1 < value.length) i += 1;
      raw += value[i];
    }
    if (quoted) {
      if (value[i] !== "'") fail('a quoted value has no closing quote');
      i += 1;
    }
    setKeyword(parts, key, raw, fail);
  }
  return parts;
}

function setKeyword(parts: PostgresParts, key: string, raw: string, fail: Fail): void {
  switch (key as (typeof KEYWORDS)[number]) {
    case 'host':
    case 'hostaddr':
      parts.host = raw;
      return;
    case 'port':
      if (!isPort(raw)) fail(settingValueShown(raw, PORT_SHAPE) ? `the port "${raw}" is not a number from 1 to 65535` : 'the port is not a number from 1 to 65535', raw);
      parts.port = Number(raw);
      return;
    case 'dbname':
      parts.database = raw;
      return;
    case 'user':
      parts.user = raw;
      return;
    case 'password':
      parts.password = raw;
      return;
    case 'sslmode':
      if (!(SSL_MODES as readonly string[]).includes(raw)) failValue(fail, `sslmode must be one of ${SSL_MODES.join(', ')}`, raw, SSL_MODES);
      parts.sslmode = raw as SslMode;
      return;
    case 'application_name':
      parts.applicationName = raw;
      return;
    case 'connect_timeout':
      if (!/^\d+$/.test(raw)) failValue(fail, 'connect_timeout must be a whole number of seconds', raw, SECONDS_SHAPE);
      parts.connectTimeoutSeconds = Number(raw);
      return;
    case 'options':
      parts.options = raw;
      return;
    case 'sslrootcert':
    case 'sslcert':
    case 'sslkey':
      parts.sslFiles = { ...parts.sslFiles, [key.slice(3)]: raw };
      return;
  }
  if (key === 'service') fail('"service" is not supported (the PostgreSQL driver reads no pg_service.conf): give host, port, dbname and user');
  // The name is not echoed: it may be the tail of a password that held a blank.
  fail(`a setting etl does not know (it understands ${KEYWORDS.join(', ')})`);
}

/** A part's value is wrong: quoted as any setting's value is (a password in the wrong place is not shown). */
function failValue(fail: Fail, rule: string, raw: string, shape: SettingShape): never {
  return fail(`${rule}, got ${quotedSettingValue(raw, shape)}`, raw);
}

function isPort(text: string): boolean {
  if (!/^\d{1,5}$/.test(text)) return false;
  const n = Number(text);
  return n >= 1 && n <= 65535;
}
