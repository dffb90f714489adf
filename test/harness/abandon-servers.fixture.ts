// Run by smoke.test.ts as a separate process: starts both servers, prints where they are, then dies
// without stopping them, so the test can check that the exit hook (children.ts) cleaned up. With
// FERRETDB_BIN=/bin/false it dies while PostgreSQL is still starting (Promise.all rejects at once).
//   node --import tsx test/harness/abandon-servers.fixture.ts exit|throw|sigterm
import { startFerretDb } from '../../dev/servers/ferretdb.ts';
import { startPostgres } from '../../dev/servers/postgres.ts';

const how = process.argv[2] ?? 'exit';
const [pg, mongo] = await Promise.all([startPostgres(), startFerretDb()]);
process.stdout.write(`${JSON.stringify({ postgres: { port: pg.port, dir: pg.dir }, mongo: { url: mongo.url, dir: mongo.dir } })}\n`);
if (how === 'throw') throw new Error('abandoned on purpose');
if (how === 'sigterm') {
  process.kill(process.pid, 'SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 30_000));
}
process.exit(3);
