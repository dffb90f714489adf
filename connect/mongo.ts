// MongoDB connections through the official driver.
import { MongoClient, type Db } from 'mongodb';
import { SourceError } from '../errors/etl-error.ts';
import { describeMongo, type MongoConfig } from './config.ts';
import { redactText } from '../errors/redact.ts';

export interface MongoConnection {
  readonly client: MongoClient;
  readonly db: Db;
  close(): Promise<void>;
}

export async function connectMongo(m: MongoConfig, secrets: readonly string[] = []): Promise<MongoConnection> {
  const client = new MongoClient(m.url, { serverSelectionTimeoutMS: 10_000, appName: 'etl' });
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
