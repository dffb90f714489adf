// MongoDB connections through the official driver.
import { MongoClient, type Db } from 'mongodb';
import { ConfigError, SourceError } from '../errors/etl-error.ts';
import { describeMongo, type MongoConfig } from './config.ts';
import { connectionStringSecrets, redactText } from '../errors/redact.ts';

/**
 * The driver's client, or a configuration error when the driver refuses the URL (an unescaped `@`
 * or `:` in the password, an unknown option): its own parser is the judge, and config.ts cannot
 * load it for every command (it costs half a second to import).
 */
function newClient(m: MongoConfig, secrets: readonly string[]): MongoClient {
  try {
    return new MongoClient(m.url, { serverSelectionTimeoutMS: 10_000, appName: 'etl' });
  } catch (cause) {
    const known = [...secrets, ...connectionStringSecrets(m.url)];
    const reason = redactText(cause instanceof Error ? cause.message : String(cause), known);
    const where = m.origin ?? 'the MongoDB URL';
    throw new ConfigError(`${where} is not a valid MongoDB connection string: ${reason} (got ${describeMongo(m)})`, [], {
      hint: 'percent-encode the special characters of the user name and the password: @ as %40, : as %3A, / as %2F, ? as %3F, # as %23, % as %25',
      context: { variable: where },
      cause,
    });
  }
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
      hint: 'check MONGODB_URL and MONGODB_DATABASE, and that the server is running',
      cause,
    });
  }
  return { client, db: client.db(m.database), close: () => client.close() };
}
