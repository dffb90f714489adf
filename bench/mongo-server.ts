// The live MongoDB-wire server the bench reads: MONGODB_URL when set (nothing started), else a
// FerretDB (SQLite backend) run on a data directory the bench keeps, so a dataset loaded once is
// served again by the next bench run without loading it again.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { ferretDbArgs, ferretDbBinary, ping } from '../dev/servers/ferretdb.ts';
import { freePort } from '../dev/servers/free-port.ts';
import { stopChild } from '../dev/servers/stop-child.ts';

export interface BenchMongoServer {
  /** Connection string without a database (may hold credentials when external: never print it). */
  readonly url: string;
  readonly external: boolean;
  /** What may be printed. */
  readonly description: string;
  /** The FerretDB process the bench started (its CPU is measured), null for an external server. */
  readonly pid: number | null;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;

export function externalMongo(url: string): BenchMongoServer {
  return { url, external: true, description: 'MONGODB_URL server', pid: null, stop: async () => undefined };
}

/** Starts FerretDB serving the SQLite files of `dir` (created if missing). */
export async function startFerretDbOn(dir: string): Promise<BenchMongoServer> {
  const binary = await ferretDbBinary();
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const log: string[] = [];
  const child: ChildProcess = spawn(
    binary,
    ferretDbArgs(dir, port),
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const remember = (chunk: Buffer): void => {
    log.push(chunk.toString('utf8'));
    if (log.length > 40) log.shift();
  };
  child.stdout?.on('data', remember);
  child.stderr?.on('data', remember);
  // The bench exits with its servers: a crash of the bench must not leave FerretDB holding the files.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.off('exit', killOnExit);
    await stopChild(child, 'SIGTERM', 10_000);
  };
  const url = `mongodb://127.0.0.1:${port}/`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`FerretDB exited during start:\n${log.join('')}`);
    }
    try {
      await ping(url, port);
      break;
    } catch (error) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`FerretDB did not answer within ${READY_TIMEOUT_MS} ms: ${(error as Error).message}\n${log.join('')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { url, external: false, description: `FerretDB (SQLite) on 127.0.0.1:${port}`, pid: child.pid ?? null, stop };
}
