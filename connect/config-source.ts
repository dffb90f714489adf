// Where each setting comes from: a flag, the process environment, or a line of the `.env` file.
// Errors about a setting name that place, so a person knows which one to fix.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { ConfigError } from '../errors/etl-error.ts';
import { systemWords } from '../errors/system-words.ts';
import { PORT_SHAPE, quotedSettingValue } from '../errors/redact.ts';

export interface SettingValue {
  readonly value: string;
  /** `DATABASE_URL`, `--database-url`, or `DATABASE_URL (/work/.env line 3)`. */
  readonly where: string;
}

export interface SettingsReader {
  /** The value of a variable (environment first, then `.env`), or undefined when unset or empty. */
  get(name: string): string | undefined;
  /** The same with where it came from. */
  read(name: string): SettingValue | undefined;
  /** A flag's value when given, else the variable's. */
  flagOr(flag: string, value: string | undefined, name: string): SettingValue | undefined;
  /** A port number (1–65535), or the fallback when unset. */
  port(name: string, fallback: number): number;
}

export function settingsReader(env: Readonly<Record<string, string | undefined>>, cwd: string, envFileFlag: string | undefined): SettingsReader {
  const envFile = path.resolve(cwd, envFileFlag ?? '.env');
  if (envFileFlag && !existsSync(envFile)) {
    throw new ConfigError(`env file not found: ${envFile}`, [], { hint: 'give an existing file, or leave the option out to read ./.env when there is one' });
  }
  const text = existsSync(envFile) ? readEnvFile(envFile, envFileFlag !== undefined) : '';
  const dotenv = text ? parseDotenv(text) : {};
  const lines = text.split(/\r?\n/);
  const nonEmpty = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);

  const read = (name: string): SettingValue | undefined => {
    // The process environment wins over .env, as dotenv does by default.
    const fromEnv = nonEmpty(env[name]);
    if (fromEnv !== undefined) return { value: fromEnv, where: name };
    const fromFile = nonEmpty(dotenv[name]);
    if (fromFile === undefined) return undefined;
    const line = lineOf(lines, name);
    const where = `${name} (${envFile}${line ? ` line ${line}` : ''})`;
    if (line !== null && cutByComment(lines[line - 1]!)) {
      // Not shown: the value is often a password, and what follows the # is the rest of it.
      throw new ConfigError(`${where}: its value holds a # right after other characters, which .env reads as the start of a comment: etl would read only what comes before it`, [], {
        context: { variable: name },
        hint: 'put the value in double quotes in the .env file, or a blank before a comment',
      });
    }
    return { value: fromFile, where };
  };
  return {
    get: (name) => read(name)?.value,
    read,
    flagOr: (flag, value, name) => (value !== undefined ? { value, where: flag } : read(name)),
    port(name, fallback) {
      const s = read(name);
      if (s === undefined) return fallback;
      if (!/^\d{1,5}$/.test(s.value) || Number(s.value) < 1 || Number(s.value) > 65535) {
        throw new ConfigError(`${s.where} must be a port number from 1 to 65535, got ${quotedSettingValue(s.value, PORT_SHAPE)}`, [], { context: { variable: name } });
      }
      return Number(s.value);
    },
  };
}

/**
 * An unquoted .env value with a `#` right after other characters (`PASSWORD=ab#cd`): dotenv ends the
 * value there, a shell would not, and a person rarely means it (a password or a URL holding `#`).
 */
function cutByComment(line: string): boolean {
  const m = /^\s*(?:export\s+)?[\w.-]+\s*[=:]\s*(.*)$/.exec(line);
  if (!m || /^['"`]/.test(m[1]!)) return false;
  return /[^\s#]#/.test(m[1]!);
}

/** The line of the last definition of `name` in a .env file's lines (dotenv keeps the last one). */
function lineOf(lines: readonly string[], name: string): number | null {
  const re = new RegExp(`^\\s*(?:export\\s+)?${name.replace(/[^A-Za-z0-9_]/g, '')}\\s*[=:]`);
  for (let i = lines.length - 1; i >= 0; i -= 1) if (re.test(lines[i]!)) return i + 1;
  return null;
}

/** The env file's text; one that cannot be read (a folder, no permission) is a configuration error naming it. */
function readEnvFile(file: string, flagged: boolean): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(`cannot read the env file ${file}${flagged ? ' (--dotenv)' : ''}: ${systemWords(cause)}`, [], {
      hint: flagged ? 'give --dotenv a readable file' : 'make ./.env a readable file, or pass --dotenv FILE',
      cause,
    });
  }
}
