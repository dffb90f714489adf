// The pipeline's tables in a test database, created as `etl schema` creates them (schema/apply.ts),
// on a connection of their own.
import pg from 'pg';
import type { PipelineModel } from '../../model/types.ts';
import { applySchema } from '../../schema/apply.ts';

export async function createTables(url: string, model: PipelineModel): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await applySchema(client, model);
  } finally {
    await client.end();
  }
}
