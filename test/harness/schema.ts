// A test database on a connection of its own: `fn` run on it, or the pipeline's tables created as
// `etl schema` creates them (schema/apply.ts).
import pg from 'pg';
import type { PipelineModel } from '../../model/types.ts';
import { applySchema } from '../../schema/apply.ts';

/** Runs `fn` on a new connection to `url`, closed after. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createTables(url: string, model: PipelineModel): Promise<void> {
  await withClient(url, (client) => applySchema(client, model));
}
