// A server process a test helper starts and owns (sshd, PgBouncer, a Debian PostgreSQL): tracked
// from its spawn, so a test process that dies kills it too (children.ts); never keeping node alive
// by itself; the tail of what it wrote on stderr kept for the message of a start that failed.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { trackChild } from './children.ts';
import { stopChild } from './stop-child.ts';

/** Characters of stderr kept. */
const STDERR_TAIL = 8_000;

export interface OwnedChild {
  readonly process: ChildProcess;
  /** The last few kB it wrote on stderr. */
  stderr(): string;
  /** Sends `signal`, SIGKILL after `graceMs`; resolves once it exited. Stops tracking it. */
  stop(signal: NodeJS.Signals, graceMs: number): Promise<void>;
}

/**
 * Spawns `command` (stdin and stdout ignored, stderr kept); `exit` is how the exit hook ends it if
 * the test process ends first, and the folder it then removes (null: none).
 */
export function spawnOwned(command: string, args: readonly string[], options: SpawnOptions, exit: { signal: NodeJS.Signals; dir: string | null }, onStderr?: (text: string) => void): OwnedChild {
  const child = spawn(command, [...args], { ...options, stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr?.on('data', (b: Buffer) => {
    tail = (tail + b.toString()).slice(-STDERR_TAIL);
    onStderr?.(b.toString());
  });
  const untrack = trackChild(child, exit.signal, exit.dir);
  child.unref();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  return {
    process: child,
    stderr: () => tail,
    async stop(signal, graceMs) {
      await stopChild(child, signal, graceMs);
      untrack();
    },
  };
}
