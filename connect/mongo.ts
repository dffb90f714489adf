// MongoDB connections through the official driver.
import { MongoClient, MongoNetworkError, MongoServerError, MongoServerSelectionError, type Db } from 'mongodb';
import { ConfigError, SourceError } from '../errors/etl-error.ts';
import { describeMongo, unreachableHint, type MongoConfig } from './config.ts';
import { connectionStringSecrets, redactText } from '../errors/redact.ts';

/**
 * The driver's client, or a configuration error when the driver refuses the URL (an unescaped `@`
 * or `:` in the password, an unknown option): its own parser is the judge, and config.ts cannot
 * load it for every command (it costs half a second to import).
 */
function newClient(m: MongoConfig, secrets: readonly string[]): MongoClient {
  try {
    return new MongoClient(m.url, { ...selectionTimeout(m.url), appName: 'etl' });
  } catch (cause) {
    const known = [...secrets, ...connectionStringSecrets(m.url)];
    const reason = redactText(cause instanceof Error ? cause.message : String(cause), known);
    const where = m.origin ?? 'the MongoDB URL';
    throw new ConfigError(`${where} is not a valid MongoDB connection string: ${reason} (got ${describeMongo(m)})`, [], {
      hint: refusalHint(reason),
      context: { variable: where },
      cause,
    });
  }
}

// The driver's words for a user name or password it cannot read (mongodb-connection-string-url).
const AUTHORITY_REFUSAL = /unescaped|invalid connection string|URI malformed|percent|username|password contains/i;

/** Percent-encoding when the driver could not read the user name or password; else the option it named. */
function refusalHint(reason: string): string {
  if (AUTHORITY_REFUSAL.test(reason) && !/option \S+ is not supported/i.test(reason)) {
    return 'percent-encode the special characters of the user name and the password: @ as %40, : as %3A, / as %2F, ? as %3F, # as %23, % as %25';
  }
  return 'fix or remove the option named above (the MongoDB manual lists the connection string options)';
}

/** 10 s to find the server, unless the URL says otherwise: the driver lets this object override the URL's options. */
function selectionTimeout(url: string): { serverSelectionTimeoutMS?: number } {
  return /[?&]serverSelectionTimeoutMS=/i.test(url) ? {} : { serverSelectionTimeoutMS: 10_000 };
}

/** Server error codes meaning "this cursor or connection is gone, try again", not "your query is wrong". */
const TRANSIENT_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  43, // CursorNotFound (killed, or timed out while we waited)
  89, // NetworkTimeout
  91, // ShutdownInProgress
  175, // QueryPlanKilled
  189, // PrimarySteppedDown
  237, // CursorKilled
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

/** The server, the connection or the cursor went away (a network drop, a restart, a step-down): trying again may work. */
export function mongoWentAway(error: unknown): boolean {
  // MongoNetworkError covers the pool-cleared error too (a subclass).
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  if (error instanceof MongoServerError && typeof error.code === 'number') return TRANSIENT_CODES.has(error.code);
  return false;
}

/** What to do when MongoDB went away under `command` (mongoWentAway). */
export function mongoGoneHint(command: string): string {
  return `the server went away; run \`etl ${command}\` again once it is back`;
}

export interface MongoConnection {
  readonly client: MongoClient;
  readonly db: Db;
  close(): Promise<void>;
}

export async function connectMongo(m: MongoConfig, secrets: readonly string[] = []): Promise<MongoConnection> {
  const client = newClient(m, secrets);
  try {
    await client.connect();
    await client.db(m.database).command({ ping: 1 });
  } catch (cause) {
    await client.close().catch(() => {});
    const reason = redactText(cause instanceof Error ? cause.message : String(cause), secrets);
    throw new SourceError('mongo_unreachable', `cannot connect to MongoDB at ${describeMongo(m)}: ${reason}`, {
      hint: unreachableHint(m.origin, 'no MongoDB URL is configured, so etl tried the default mongodb://localhost:27017: set MONGODB_URL (environment or .env) or pass the URL as a flag'),
      cause,
    });
  }
  return { client, db: client.db(m.database), close: () => client.close() };
}
